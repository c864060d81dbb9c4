# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation of module attributes (the community.docker _attributes pattern).

Use C(arcwi.workload_identity.attributes) and then the fragments that set the support levels,
for example C(arcwi.workload_identity.attributes.ACTIONGROUP_AZURE).
"""


class ModuleDocFragment:

    # Standard fragment: describes the attributes; modules set `support` per attribute.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return the changed status it predicts, and the predicted state, without modifying the target.
  diff_mode:
    description: Returns details on what has changed (or would change in C(check_mode)) when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled or queried by the module has not changed in a relevant way.
"""

    # For the resource modules: check mode predicts, diff mode shows before/after, a re-run changes nothing.
    FULL_SUPPORT = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
"""

    # For modules that only read: use together with the standard fragment.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""

    # For the Azure modules: membership of the azure action group (meta/runtime.yml).
    ACTIONGROUP_AZURE = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/arcwi.workload_identity.azure) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - arcwi.workload_identity.azure
"""
