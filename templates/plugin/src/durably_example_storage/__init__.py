"""An example durably storage backend: ``example:///absolute/path`` keeps every key as a file there."""

from durably_example_storage._storage import ExampleStorage

__all__ = ["ExampleStorage"]
