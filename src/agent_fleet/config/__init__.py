"""The settings: `config.toml` (the original's sections and keys) and the environment.

`settings` holds the models and the loading, `keys` the check of which keys a file may
hold, `original` the original's `[adapters]` read as `[agent_types]`, `render` what
`config check` prints. Only bootstrap and the CLI read them; everything below gets
plain values.
"""

from agent_fleet.config.settings import (
    DEFAULT_CONFIG_PATH,
    LoadedSettings,
    ServerConfig,
    Settings,
    load_settings,
)
from agent_fleet.domain.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ConfigError",
    "LoadedSettings",
    "ServerConfig",
    "Settings",
    "load_settings",
]
