"""Test doubles shared across test folders, imported as ``tests.fakes.<module>`` (no ``sys.path`` changes):

* ``standin_cell``: ``LinearCell``, an exact linear cell for the simulated BTS and the driver tests on it;
* ``ordered_transport``: ``OrderedTransport``, the BTS client's transport replaying an expected dialogue;
* ``ordered_eclib``: ``OrderedEClib``, the same at the EClib DLL boundary.

The ordered fakes follow pymeasure's ``expected_protocol``: used as context managers, they check on leaving the
block that every expected exchange happened.
"""
