"""Vendor-file imports: Neware .nda/.ndax (fastnda) and Biologic .mpr (galvani) into the store as finished runs.

The readers are optional (``pip install "battery-test-station[import]"``) and imported only when a file of their
kind is read. :func:`station.imports.importer.import_file` is the entry point; ``station import`` its command.
"""
