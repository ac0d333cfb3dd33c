"""Parts every engine shares and no engine's driver: the group-commit writer, a zone's UTC offsets as
standard SQL, the funnel kernel's input packing and figures, and the engage id-list cache. Nothing here
imports an engine package (tests/test_architecture.py)."""
