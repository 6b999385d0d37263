"""The torch-free core: the spec, the model-type and training-run records, tolerances,
comparison of poses, errors and atomic files. numpy, attrs and cattrs only; imports no
other layer."""
