"""Option checking shared by the two plug-in families that take options: search strategies and
pruners. Each declares its options with their defaults (anything else is refused) and the smallest
value of its integer options; a family adds its own checks after these."""

from collections.abc import Mapping


class OptionError(ValueError):
    """A bad option, named in `option` so a form or API error can point at it."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(f"option {option!r}: {message}")


def options_merged(
    options, *, defaults: Mapping, minimums: Mapping, owner: str, field: str, error: type[OptionError]
) -> dict:
    """Returns `options` over `defaults`, or raises `error` naming the first bad one.

    owner: what takes the options, for the message ("the median pruner");
    field: the name to blame when `options` is not an object at all ("pruner_options");
    minimums: integer option -> its smallest allowed value (booleans are no integers here).
    """
    if not isinstance(options, Mapping):
        raise error(field, "must be an object")
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise error(unknown[0], f"is not an option of {owner} (known: {known})")
    merged = {**defaults, **options}
    for option, minimum in minimums.items():
        value = merged[option]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise error(option, f"must be an integer of at least {minimum}, got {value!r}")
    return merged
