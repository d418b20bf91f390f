"""A locustfile that fails on import, as a typo would."""

import this_module_does_not_exist  # noqa: F401
