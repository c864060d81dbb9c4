# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cluster access for the modules that read a cluster (workload_identity_check, arc_connect): the
kubernetes client from a kubeconfig and context, the apiserver's non-resource paths (its own OIDC
discovery document and JWKS), and its errors as one line."""
from __future__ import annotations

import json

from ansible.module_utils.common.text.converters import to_text
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError

try:
    from kubernetes import client as k8s_client, config as k8s_config  # pylint: disable=unused-import  # re-exported for the modules
    from kubernetes.client.rest import ApiException
except ImportError:
    import traceback

    K8S_IMPORT_ERROR = traceback.format_exc()
    k8s_client = k8s_config = None

    class ApiException(Exception):  # so that isinstance() checks work without the library
        status = reason = body = None
else:
    K8S_IMPORT_ERROR = None


class ClusterConfigError(ArcwiError):
    """The kubeconfig or context cannot be used."""


def api_client(kubeconfig: str | None, context: str | None):
    try:
        return k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as exc:  # the loader raises several types (ConfigException, OSError, ...)
        raise ClusterConfigError(f"cannot load the kubeconfig ({kubeconfig or '~/.kube/config'}, context "
                                 f"{context or 'current'}): {exc}") from exc


def raw_get(api, path: str):
    """GET a non-resource path of the apiserver as JSON (as `kubectl get --raw`)."""
    if not hasattr(api, "param_serialize"):  # kubernetes < 35: the older generated client
        return api.call_api(path, "GET", auth_settings=["BearerToken"], response_type="object",
                            _return_http_data_only=True)
    request = api.param_serialize("GET", path, auth_settings=["BearerToken"])
    response = api.call_api(request[0], request[1], header_params=request[2])
    response.read()
    if not 200 <= response.status < 300:
        raise ApiException(http_resp=response)
    return json.loads(response.data)


def api_error_message(exc) -> str:
    return f"Kubernetes API: HTTP {exc.status} {exc.reason}: {to_text(exc.body)[:500]}"
