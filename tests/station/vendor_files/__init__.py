"""Writers of small vendor files (Neware .nda/.ndax, Biologic .mpr) from known values, for the import tests.

None of fastnda, NewareNDA or galvani ships test files in its source distribution, and tests never download. So
these writers lay out files from the format facts the readers document (byte offsets and record structs read in
their source; the code here is our own), and the tests prove every file with the reader package itself before
importing it.
"""
