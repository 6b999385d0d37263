"""Artifact formats (`formats.FORMATS`): the spec inside each file, payload hashes, descriptions."""
