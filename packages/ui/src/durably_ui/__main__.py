"""``python -m durably_ui``: the same as ``durably ui``."""

from durably_ui._cli import main

main()
