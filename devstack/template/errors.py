"""The one error type of the renderer: a render that cannot be faithful fails, loudly."""


class TemplateError(Exception):
    """Parse or execution error; the message starts with `template:` like consul-template's."""


class UnsupportedError(TemplateError):
    """A construct consul-template has but this subset does not implement."""
