"""Dataset loaders; each reads a root folder in the dataset's own release layout."""
