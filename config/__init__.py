"""Runtime configuration for task-history: one typed model, layered sources.

See `config.settings` for the precedence rules; `config/default.toml` ships the
defaults and is kept identical to the model's field defaults by the tests.
"""

from config.settings import (
    SETTINGS_SPEC,
    Settings,
    SettingsError,
    SettingSpec,
    is_loopback_host,
    load_settings,
)

__all__ = ["SETTINGS_SPEC", "SettingSpec", "Settings", "SettingsError", "is_loopback_host", "load_settings"]
