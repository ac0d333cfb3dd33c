"""Compiled per-user scans (numba) over columns an engine hands over as numpy arrays.

The engine filters, resolves identities and evaluates expressions; a kernel only groups rows by user,
orders each user's rows by time, and walks them. Kept free of any engine so that another engine can
feed the same arrays."""
