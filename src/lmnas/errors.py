"""One exception type for every user-facing failure, so adapters print one clean line."""


class LmnasError(Exception):
    """A problem the user can fix: the message names the file, field or genotype at fault."""
