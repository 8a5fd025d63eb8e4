# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""What the modules that reach storage share: their storage options and an AnsibleModule
that keeps the storage credentials' secrets out of every result.

`storage_credentials` is the environment the runtime gets on the training host
(config/storage.env): endpoints and regions in it stay readable in messages, the values of
its secret keys (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ACCESS_KEY_ID, ...) are
masked. They are masked in a refusal of bad arguments too, which AnsibleModule makes before
a module's main() could register them (its result echoes the arguments at -vvv).
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    secret_values,
)

STORAGE_ARGUMENT_SPEC = dict(
    storage_uri=dict(type="str"),
    # Only the secret values are masked (StorageModule): endpoints and regions stay
    # readable in messages.
    storage_credentials=dict(type="dict", default={}, no_log=False),
    connect_timeout=dict(type="float", default=CONNECT_TIMEOUT),
    read_timeout=dict(type="float", default=READ_TIMEOUT),
)


def timeout_error(params: dict) -> str | None:
    for name in ("connect_timeout", "read_timeout"):
        if params[name] is not None and not params[name] > 0:
            return "%s must be more than 0 seconds, got %s" % (name, params[name])
    return None


class StorageModule(AnsibleModule):
    """AnsibleModule whose results never show a secret of `storage_credentials`."""

    def _mask_storage_secrets(self) -> None:
        params = getattr(self, "params", None)
        if isinstance(params, dict):
            self.no_log_values.update(secret_values(params.get("storage_credentials")))

    def exit_json(self, **kwargs):
        self._mask_storage_secrets()
        super().exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        self._mask_storage_secrets()
        super().fail_json(msg, **kwargs)
