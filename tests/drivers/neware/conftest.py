"""The download page reader (drivers/neware/page_scan.py) imports pyarrow on the first page it reads, so that
commands that never download do not pay for it. Tests that measure what reading one page allocates
(test_neware_page_checks.py) must not count that one-time import, whichever test happens to run first: it is
done here, before any of them."""

import pyarrow.compute  # noqa: F401
