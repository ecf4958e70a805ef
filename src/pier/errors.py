"""The errors a pier user can cause, and the answer each one carries.

    PierError                      base: str(error) is a one-line cause and fix
    ├── ConfigError                an option has a bad value, or is unknown
    ├── AppLoadError               the "module:attr" app could not be loaded
    │   ├── AppModuleNotFound      the module (or a parent package) does not exist
    │   ├── AppImportFailed        the module exists but raised while importing
    │   ├── AppAttributeMissing    the module has no such attribute
    │   ├── AppNotCallable         the attribute is not a callable
    │   ├── AppFactoryFailed       calling the factory raised, or returned a non-callable
    │   └── InterfaceMismatch      --interface contradicts the callable's shape
    ├── LifespanFailed             the app's lifespan startup (or shutdown) failed
    └── BindError                  a listening socket could not be opened

Rules: every subclass is raised at start-up and turned into one log line and exit
code 1 by the CLI (no traceback wall); the message says what was found and what to do.
Errors that happen while serving (a broken app, bad client input) are never raised
out of the server: they are logged and answered on the connection they belong to.
"""

from __future__ import annotations


class PierError(Exception):
    """Base of every user-facing pier error; the message names cause and fix."""

    exit_code: int = 1


class ConfigError(PierError):
    """An option has a value pier cannot use, or does not exist."""


class AppLoadError(PierError):
    """The application named on the command line could not be loaded."""


class AppModuleNotFound(AppLoadError):
    """The module named in "module:attr" cannot be found on sys.path."""


class AppImportFailed(AppLoadError):
    """The module was found but raised an exception while being imported."""


class AppAttributeMissing(AppLoadError):
    """The module has no attribute with the given (dotted) name."""


class AppNotCallable(AppLoadError):
    """The loaded attribute is not callable, so it cannot be an ASGI app."""


class AppFactoryFailed(AppLoadError):
    """An app factory raised, or returned something that is not an app."""


class InterfaceMismatch(AppLoadError):
    """An explicit --interface contradicts the shape of the callable."""


class LifespanFailed(PierError):
    """The application's lifespan startup or shutdown reported a failure."""


class BindError(PierError):
    """A listening socket could not be created (address in use, permission...)."""
