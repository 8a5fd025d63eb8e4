# -*- coding: utf-8 -*-
# Copyright: rlops.fleet developers
# Apache License 2.0 (see LICENSE)
"""rlops.fleet.session_preflight: the controller's checks of a training request, in Ansible's
worker - no module process: they only read the request, the controller's gymnasium registry
and, for s3:// storage, the storage itself. The checks are module_utils/session_checks.py's
run_checks; this is the I/O around them. The module file is the documentation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import remove_values
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.rlops.fleet.plugins.module_utils.s3_probe import secret_values
from ansible_collections.rlops.fleet.plugins.module_utils.session_checks import (
    ARGUMENT_SPEC,
    gymnasium_registry,
    run_checks,
)

display = Display()


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        validation, params = self.validate_argument_spec(ARGUMENT_SPEC)
        for said in validation._deprecations:  # check_storage: its removal, as a module says it
            display.deprecated(said["msg"], version=said.get("version"), date=said.get("date"),
                               collection_name=said.get("collection_name"))
        registry = gymnasium_registry() if params["env_id"] else None
        found, error = run_checks(params, registry=registry, check_mode=self._task.check_mode)
        result.update(found)
        if error:
            result.update(failed=True, msg=error)
        # No secret of the storage credentials in the result (an S3 error may quote one).
        return remove_values(result, secret_values(params.get("storage_credentials")))
