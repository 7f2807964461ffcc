"""Lists the configs and their variants: `python -m lssvwm.configs` (in a checkout that is not
installed: `python -m configs`)."""

from lssvwm.config_loading import available_configs, format_config_list

print(format_config_list(available_configs()))
