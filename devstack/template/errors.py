"""The one error type of the renderer: a render that cannot be faithful fails, loudly."""


class TemplateError(Exception):
    """Parse or execution error; the message starts with `template:` like consul-template's."""


class UnsupportedError(TemplateError):
    """A construct consul-template has but this subset does not implement."""


class MissingDependency(TemplateError):
    """A dependency consul-template blocks on until it exists (a nomadVar path that is not
    there yet): the render waits for it instead of failing after the retries."""
