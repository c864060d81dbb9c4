"""The arcwi sandbox: an offline stand-in for Azure (ARM, Entra, Storage) on 127.0.0.1.

Run `python -m sandbox --help` from the repository root. Nothing here is shipped in the collection.
"""
