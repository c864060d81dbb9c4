#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: arc_connect
short_description: Connect a Kubernetes cluster to Azure Arc, idempotently (what az connectedk8s connect does)
version_added: 0.1.0
description:
  - Registers the resource providers Arc needs (C(Microsoft.Kubernetes), C(Microsoft.KubernetesConfiguration),
    C(Microsoft.ExtendedLocation)) and waits until they are C(Registered).
  - Checks the cluster before anything is written; it answers, has a linux/amd64 node, and the caller may create
    clusterrolebindings (SelfSubjectAccessReview); detects the distribution (kind, k3s, ...) and infrastructure.
  - Generates the RSA-4096 agent key pair, creates the C(Microsoft.Kubernetes/connectedClusters) resource with
    the public key, gets the agent chart's location from the Arc data plane (C(GetLatestHelmPackagePath)),
    installs the C(azure-arc) Helm release with the private key, and waits until the resource reports
    C(connectivityStatus=Connected).
  - "Idempotent: the chart's ConfigMap C(azure-arc/azure-clusterconfig) names the resource group and name the
    cluster is connected as. Same names and the resource exists: nothing is generated or installed again
    (tags and the issuer/workload identity features are updated in place). Other names: the module fails.
    ConfigMap without resource (a stale onboarding): the agents are removed and the cluster onboarded again.
    A resource that never connected and whose cluster has no agents (an onboarding interrupted between the
    resource and the release) is replaced with a new key; one that did connect belongs to another cluster
    and the module fails."
  - A C(azure-arc) release that a killed helm left C(pending-upgrade) or C(pending-rollback) (Helm refuses
    every later upgrade of it) is rolled back; one left C(pending-install) never finished onboarding, so it
    is uninstalled and the cluster onboarded again with a new key.
  - O(oidc_issuer=true) makes Arc host the cluster's OIDC issuer (RV(connected_cluster.oidc_issuer_url); the
    apiserver must then be started with that issuer). It cannot be disabled once enabled.
  - O(state=absent) uninstalls the agents and deletes the resource.
  - The private key is never returned or logged; it reaches Helm through a values file readable by the owner only,
    deleted right after.
author:
  - arcwi maintainers (!UNKNOWN)
options:
  name:
    description: Name of the connected cluster resource.
    type: str
    required: true
  resource_group:
    description: Resource group of the connected cluster resource (it must exist).
    type: str
    required: true
  location:
    description: Azure region of the resource. Required when O(state=present).
    type: str
  tags:
    description: Tags of the resource. When not set, the tags are left as they are.
    type: dict
  purge_tags:
    description: With O(tags) set, remove tags that are not in O(tags).
    type: bool
    default: true
  state:
    description: Whether the cluster should be connected.
    type: str
    choices: [present, absent]
    default: present
  kubeconfig:
    description: Kubeconfig of the cluster. Defaults to C(~/.kube/config) (or E(KUBECONFIG)).
    type: path
  context:
    description: Context of the kubeconfig. Defaults to the current context.
    type: str
  distribution:
    description: Kubernetes distribution reported to Azure. V(auto) detects it from the nodes and the version.
    type: str
    default: auto
  infrastructure:
    description: Infrastructure reported to Azure. V(auto) detects it from the nodes' provider IDs.
    type: str
    default: auto
  oidc_issuer:
    description: Let Arc host the cluster's OIDC issuer.
    type: bool
    default: false
  workload_identity:
    description: Enable Arc's workload identity webhook.
    type: bool
    default: false
  dataplane_endpoint:
    description:
      - Base URL of the Arc configuration data plane. Defaults to
        C(https://LOCATION.dp.kubernetesconfiguration.azure.com/) (the suffix follows the cloud's login host).
      - The sandbox sets it through E(ARCWI_ARC_DATAPLANE_ENDPOINT).
    type: str
  release_train:
    description: Agent release train asked from the data plane.
    type: str
    default: stable
  helm_binary:
    description: The helm executable (3.8 or newer, for OCI charts).
    type: path
    default: helm
  wait_timeout:
    description: Seconds to wait for the provider registrations, the Helm release and C(Connected).
    type: int
    default: 600
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.FULL_SUPPORT
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
requirements:
  - azure-mgmt-hybridkubernetes >= 2.0.0
  - azure-mgmt-resource >= 23.0.0
  - kubernetes >= 24.2.0
  - cryptography >= 41.0.0
  - helm >= 3.8 on the controller
seealso:
  - name: az connectedk8s connect
    description: The Azure CLI command this module replaces.
    link: https://learn.microsoft.com/cli/azure/connectedk8s#az-connectedk8s-connect
"""

EXAMPLES = r"""
- name: Connect the kind cluster to Azure Arc
  arcwi.workload_identity.arc_connect:
    name: arcwi-demo
    resource_group: rg-arcwi-demo
    location: westeurope
    kubeconfig: ~/.kube/config
    context: kind-arcwi-demo
    tags:
      owner: platform
  register: arc

- name: Let Arc host the issuer and run its webhook
  arcwi.workload_identity.arc_connect:
    name: arcwi-demo
    resource_group: rg-arcwi-demo
    location: westeurope
    context: kind-arcwi-demo
    oidc_issuer: true
    workload_identity: true
  register: arc

- name: The issuer the apiserver must use
  ansible.builtin.debug:
    msg: "{{ arc.connected_cluster.oidc_issuer_url }}"

- name: Disconnect
  arcwi.workload_identity.arc_connect:
    name: arcwi-demo
    resource_group: rg-arcwi-demo
    context: kind-arcwi-demo
    state: absent
"""

RETURN = r"""
connected_cluster:
  description: The connected cluster after the task (the predicted one in check mode; empty when absent).
  returned: always
  type: dict
  contains:
    id:
      description: ARM ID.
      type: str
    name:
      description: Name.
      type: str
    location:
      description: Region.
      type: str
    tags:
      description: Tags.
      type: dict
    principal_id:
      description: Object ID of the resource's system-assigned identity.
      type: str
    provisioning_state:
      description: Provisioning state.
      type: str
    connectivity_status:
      description: C(Connecting), C(Connected), C(Offline) or C(Expired), as the agents report it.
      type: str
    kubernetes_version:
      description: Kubernetes version the agents report.
      type: str
    total_node_count:
      description: Node count the agents report.
      type: int
    agent_version:
      description: Agent version.
      type: str
    distribution:
      description: Distribution.
      type: str
    infrastructure:
      description: Infrastructure.
      type: str
    oidc_issuer_enabled:
      description: Whether Arc hosts the OIDC issuer.
      type: bool
    oidc_issuer_url:
      description: The Arc-hosted issuer URL (start the apiserver with it, byte for byte).
      type: str
    workload_identity_enabled:
      description: Whether Arc's workload identity webhook is enabled.
      type: bool
  sample:
    id: /subscriptions/0000/resourceGroups/rg-arcwi-demo/providers/Microsoft.Kubernetes/connectedClusters/arcwi-demo
    name: arcwi-demo
    connectivity_status: Connected
    kubernetes_version: 1.35.4
    total_node_count: 1
    distribution: kind
    oidc_issuer_enabled: false
providers:
  description: The resource providers and their registration state after the task.
  returned: when state is present
  type: dict
  sample: {Microsoft.Kubernetes: Registered}
actions:
  description: What the task did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [register Microsoft.Kubernetes, create connectedClusters/arcwi-demo, install release azure-arc]
"""

import json
import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import env_fallback
from ansible_collections.arcwi.workload_identity.plugins.module_utils import _arc as arc
from ansible_collections.arcwi.workload_identity.plugins.module_utils import _helm
from ansible_collections.arcwi.workload_identity.plugins.module_utils import _k8s
from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import (
    RESOURCE_IMPORT_ERROR,
    ArmRetryPolicy,
    AzureModule,
    ResourceManagementClient,
    state_spec,
    tags_spec,
)
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import (
    desired_tags,
    validate_resource_group_name,
)

try:
    from azure.mgmt.hybridkubernetes import ConnectedKubernetesClient
    from azure.mgmt.hybridkubernetes import models as hk_models
except ImportError:
    import traceback

    HK_IMPORT_ERROR = traceback.format_exc()
else:
    HK_IMPORT_ERROR = None

try:
    from azure.core import PipelineClient
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy, HeadersPolicy, UserAgentPolicy
    from azure.core.rest import HttpRequest
except ImportError:
    pass  # AzureModule reports the missing azure-core

# The connectedClusters api-version: the newest stable one (azure-mgmt-hybridkubernetes 2.0.0's default); it has
# oidcIssuerProfile and securityProfile, which PUT sets (PATCH has neither).
API_VERSION = "2026-05-01"
POLL_SECONDS = 2.0


class Cluster:
    """The Kubernetes side: checks, the Arc ConfigMap, the agents' namespaces."""

    def __init__(self, kubeconfig, context):
        self.api = _k8s.api_client(kubeconfig, context)
        self.core = _k8s.k8s_client.CoreV1Api(self.api)

    def version(self) -> dict:
        try:
            info = _k8s.k8s_client.VersionApi(self.api).get_code()
        except Exception as exc:
            raise arc.ArcError(f"cannot reach the cluster's apiserver: {exc}") from exc
        return self.api.sanitize_for_serialization(info)

    def nodes(self) -> list:
        return self.api.sanitize_for_serialization(self.core.list_node())["items"]

    def may_create_clusterrolebindings(self) -> bool:
        review = _k8s.k8s_client.V1SelfSubjectAccessReview(spec=_k8s.k8s_client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=_k8s.k8s_client.V1ResourceAttributes(
                verb="create", group="rbac.authorization.k8s.io", resource="clusterrolebindings")))
        answer = _k8s.k8s_client.AuthorizationV1Api(self.api).create_self_subject_access_review(review)
        return bool(answer.status.allowed)

    def cluster_config(self) -> dict | None:
        try:
            cm = self.core.read_namespaced_config_map(arc.CONFIG_MAP, arc.CONFIG_NAMESPACE)
        except _k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(cm.data or {})

    def wait_namespace_gone(self, namespace: str, deadline: float) -> None:
        while True:
            try:
                self.core.read_namespace(namespace)
            except _k8s.ApiException as exc:
                if exc.status == 404:
                    return
                raise
            if time.monotonic() > deadline:
                raise arc.ArcError(f"namespace {namespace} is still terminating after the agents were removed")
            time.sleep(POLL_SECONDS)


class Helm:
    """helm for the azure-arc release (module_utils/_helm.py runs it and reads its status)."""

    def __init__(self, module, binary, kubeconfig, context):
        self.cli = _helm.Helm(module.run_command, binary, kubeconfig, context)

    def status(self):
        """The release's status (deployed, failed, pending-install, ...), None when there is none."""
        release = self.cli.release(arc.RELEASE, arc.RELEASE_NAMESPACE)
        return release["status"] if release else None

    def release_exists(self) -> bool:
        return self.status() is not None

    def rollback(self, timeout: int) -> None:
        self.cli.rollback(arc.RELEASE, arc.RELEASE_NAMESPACE, timeout)

    def install(self, chart: str, version: str, values: dict, timeout: int) -> None:
        workdir = tempfile.mkdtemp(prefix="arcwi-arc-")
        try:
            path = os.path.join(workdir, "values.json")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(values, handle)  # JSON is YAML; holds the agents' private key
            self.cli.run("upgrade", "--install", arc.RELEASE, chart, "--version", version, "--namespace",
                         arc.RELEASE_NAMESPACE, "--create-namespace", "--values", path, "--wait", "--timeout",
                         f"{timeout}s", "--output", "json")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def uninstall(self, timeout: int) -> None:
        self.cli.uninstall(arc.RELEASE, arc.RELEASE_NAMESPACE, timeout)


def chart_location(credential, scope: str, endpoint: str, release_train: str) -> str:
    """POST {endpoint}azure-arc-k8sagents/GetLatestHelmPackagePath -> repositoryPath."""
    client = PipelineClient(base_url=endpoint, policies=[
        HeadersPolicy(), UserAgentPolicy(sdk_moniker="arcwi-workload-identity"), ArmRetryPolicy(),
        BearerTokenCredentialPolicy(credential, scope)])
    url = (endpoint.rstrip("/") + "/azure-arc-k8sagents/GetLatestHelmPackagePath"
           f"?api-version={arc.CHART_API_VERSION}&releaseTrain={release_train}")
    response = client.send_request(HttpRequest("POST", url, headers={"Accept": "application/json"}))
    if response.status_code != 200:
        raise arc.ArcError(f"the Arc data plane ({endpoint}) answered HTTP {response.status_code} for the agent chart: "
                           f"{response.text()[:500]}")
    path = (response.json() or {}).get("repositoryPath")
    if not path:
        raise arc.ArcError(f"the Arc data plane ({endpoint}) returned no repositoryPath: {response.text()[:500]}")
    return path


class Providers:
    def __init__(self, client):
        self.client = client

    def states(self) -> dict:
        return {ns: self.client.providers.get(ns).registration_state for ns in arc.PROVIDERS}

    def register(self, namespaces, deadline: float) -> dict:
        for ns in namespaces:
            self.client.providers.register(ns)
        while True:
            states = self.states()
            if all(states[ns] == "Registered" for ns in namespaces):
                return states
            if time.monotonic() > deadline:
                raise arc.ArcError(f"resource providers not Registered in time: {states}")
            time.sleep(POLL_SECONDS)


def wanted_features(p, before: dict | None) -> tuple[bool, bool]:
    if before and before["oidc_issuer_enabled"] and not p["oidc_issuer"]:
        raise arc.ArcError("oidc_issuer: the OIDC issuer of a connected cluster cannot be disabled once enabled "
                           f"({before['name']} has it enabled); set oidc_issuer: true")
    return p["oidc_issuer"], p["workload_identity"]


def feature_properties(oidc: bool, wi: bool) -> dict:
    return {"oidc_issuer_profile": hk_models.OidcIssuerProfile(enabled=oidc),
            "security_profile": hk_models.SecurityProfile(
                workload_identity=hk_models.SecurityProfileWorkloadIdentity(enabled=wi))}


def wait_connected(hk, rg: str, name: str, deadline: float) -> dict:
    while True:
        current = arc.normalise_connected_cluster(hk.connected_cluster.get(rg, name))
        if current["connectivity_status"] == "Connected":
            return current
        if time.monotonic() > deadline:
            raise arc.ArcError(f"connected cluster {name} is {current['connectivity_status']} (provisioning "
                               f"{current['provisioning_state']}), not Connected, after the wait: are the agents "
                               f"running? (kubectl -n {arc.CONFIG_NAMESPACE} get pods)")
        time.sleep(POLL_SECONDS)


def present(module, p, cluster: Cluster, helm: Helm, deadline: float) -> dict:
    actions = []
    version = cluster.version()
    nodes = cluster.nodes()
    problems = arc.node_problems(nodes)
    if problems:
        raise arc.ArcError(problems[0])
    if not cluster.may_create_clusterrolebindings():
        raise arc.ArcError("the kubeconfig's user may not create clusterrolebindings, which the Arc agents' chart "
                           "installs: use a cluster-admin context")
    distribution = arc.detect_distribution(nodes, version) if p["distribution"] == "auto" else p["distribution"]
    infrastructure = arc.detect_infrastructure(nodes) if p["infrastructure"] == "auto" else p["infrastructure"]
    config = cluster.cluster_config()
    if config is not None:
        owner = (config.get("AZURE_RESOURCE_GROUP", ""), config.get("AZURE_RESOURCE_NAME", ""))
        if (owner[0].lower(), owner[1].lower()) != (p["resource_group"].lower(), p["name"].lower()):
            raise arc.ArcError(f"this cluster is already connected to Azure Arc as {owner[1]} in resource group "
                               f"{owner[0]} (ConfigMap {arc.CONFIG_NAMESPACE}/{arc.CONFIG_MAP}); disconnect it "
                               "first (state: absent with that name and resource group) or use that name")

    session = module.session
    providers = Providers(module.client(ResourceManagementClient))
    states = providers.states()
    unregistered = [ns for ns in arc.PROVIDERS if states[ns] != "Registered"]
    actions += [f"register {ns}" for ns in unregistered]
    if unregistered and not module.check_mode:
        states = providers.register(unregistered, deadline)

    hk = module.client(ConnectedKubernetesClient, api_version=API_VERSION, polling_interval=POLL_SECONDS)
    try:
        existing = hk.connected_cluster.get(p["resource_group"], p["name"])
    except ResourceNotFoundError:
        existing = None
    before = arc.normalise_connected_cluster(existing)
    oidc, wi = wanted_features(p, before)
    tags = desired_tags(before and before["tags"], p["tags"], p["purge_tags"])

    # a helm killed mid-run leaves the release pending-*, and helm refuses every later upgrade of it
    # (pkg/action/upgrade.go): an unfinished upgrade or rollback is rolled back (rollback has no pending
    # check); an unfinished first install means the agents never finished onboarding, as below
    release_status = helm.status()
    recovery = _helm.recovery(release_status)
    pending_install = recovery == "uninstall"
    if recovery == "rollback":
        actions.append(f"roll back release {arc.RELEASE} (left {release_status} by an interrupted helm)")
        if not module.check_mode:
            helm.rollback(max(1, int(deadline - time.monotonic())))

    interrupted = (before is not None and config is None and before["connectivity_status"] == "Connecting"
                   and not before["agent_version"]) or (before is not None and pending_install)
    if before is not None and config is None and not interrupted:
        raise arc.ArcError(f"connected cluster {p['name']} exists in resource group {p['resource_group']} but this "
                           f"cluster has no Arc agents (no ConfigMap {arc.CONFIG_NAMESPACE}/{arc.CONFIG_MAP}): "
                           "another cluster may be connected as it; delete it (state: absent) or choose another name")

    if before is not None and not interrupted:
        # connected as asked: update tags and features in place; no new key, no new release
        # (a rollback above counts as a change)
        features = (oidc, wi) != (before["oidc_issuer_enabled"], before["workload_identity_enabled"])
        after = dict(before, tags=tags, oidc_issuer_enabled=oidc, workload_identity_enabled=wi)
        if features:
            # the PATCH body has no feature profiles: az connectedk8s update PUTs the resource it read
            actions.append(f"update connectedClusters/{p['name']} (oidc_issuer={oidc}, workload_identity={wi})")
            if not module.check_mode:
                existing.tags = tags
                for key, value in feature_properties(oidc, wi).items():
                    setattr(existing.properties, key, value)
                after = arc.normalise_connected_cluster(hk.connected_cluster.begin_create_or_replace(
                    p["resource_group"], p["name"], existing).result())
        elif tags != before["tags"]:
            actions.append(f"update connectedClusters/{p['name']} (tags)")
            if not module.check_mode:
                after = arc.normalise_connected_cluster(hk.connected_cluster.begin_update_async(
                    p["resource_group"], p["name"], hk_models.ConnectedClusterPatch(tags=tags)).result())
        if not module.check_mode and after["connectivity_status"] != "Connected":
            after = wait_connected(hk, p["resource_group"], p["name"], deadline)
        return {"changed": bool(actions), "before": before, "after": after, "actions": actions, "providers": states}

    if pending_install:
        actions.append(f"remove release {arc.RELEASE} (left pending-install by an interrupted helm)")
    elif config is not None:
        actions.append(f"remove the stale agents (release {arc.RELEASE}: ConfigMap without resource)")
    actions += [f"{'replace' if interrupted else 'create'} connectedClusters/{p['name']}",
                f"install release {arc.RELEASE}"]
    predicted = {"id": None, "name": p["name"], "location": p["location"], "tags": tags, "principal_id": None,
                 "provisioning_state": "Succeeded", "connectivity_status": "Connected", "kubernetes_version": None,
                 "total_node_count": len(nodes), "agent_version": None, "distribution": distribution,
                 "infrastructure": infrastructure, "oidc_issuer_enabled": oidc, "oidc_issuer_url": None,
                 "workload_identity_enabled": wi}
    if module.check_mode:
        return {"changed": True, "before": before, "after": predicted, "actions": actions, "providers": states}

    if config is not None or pending_install:
        if release_status is not None:
            helm.uninstall(max(1, int(deadline - time.monotonic())))
        cluster.wait_namespace_gone(arc.CONFIG_NAMESPACE, deadline)
    public_key, private_key = arc.agent_key_pair()
    body = hk_models.ConnectedCluster(
        location=p["location"], tags=tags, identity=hk_models.ConnectedClusterIdentity(type="SystemAssigned"),
        properties=hk_models.ConnectedClusterProperties(
            agent_public_key_certificate=public_key, distribution=distribution, infrastructure=infrastructure,
            **feature_properties(oidc, wi)))
    created = hk.connected_cluster.begin_create_or_replace(p["resource_group"], p["name"], body).result()
    endpoint = p["dataplane_endpoint"] or arc.default_dataplane_endpoint(p["location"], session.cloud.authority_host)
    chart, chart_version = arc.chart_reference(chart_location(session.credential, session.cloud.arm_scope,
                                                              endpoint, p["release_train"]))
    values = arc.helm_values(session.subscription_id, p["resource_group"], p["name"], p["location"],
                             created.identity.tenant_id, distribution, infrastructure, private_key,
                             arc.arm_cloud_name(session.cloud.name))
    del private_key
    helm.install(chart, chart_version, values, max(1, int(deadline - time.monotonic())))
    after = wait_connected(hk, p["resource_group"], p["name"], deadline)
    return {"changed": True, "before": before, "after": after, "actions": actions, "providers": states}


def absent(module, p, cluster: Cluster, helm: Helm, deadline: float) -> dict:
    actions = []
    config = cluster.cluster_config()
    ours = config is not None and (config.get("AZURE_RESOURCE_GROUP", "").lower(),
                                   config.get("AZURE_RESOURCE_NAME", "").lower()) == (p["resource_group"].lower(),
                                                                                      p["name"].lower())
    hk = module.client(ConnectedKubernetesClient, api_version=API_VERSION, polling_interval=POLL_SECONDS)
    try:
        before = arc.normalise_connected_cluster(hk.connected_cluster.get(p["resource_group"], p["name"]))
    except ResourceNotFoundError:
        before = None
    if ours:
        actions.append(f"uninstall release {arc.RELEASE}")
    if before is not None:
        actions.append(f"delete connectedClusters/{p['name']}")
    if not module.check_mode:
        if ours:
            if helm.release_exists():
                helm.uninstall(max(1, int(deadline - time.monotonic())))
            cluster.wait_namespace_gone(arc.CONFIG_NAMESPACE, deadline)
        if before is not None:
            hk.connected_cluster.begin_delete(p["resource_group"], p["name"]).result()
    return {"changed": bool(actions), "before": before, "after": None, "actions": actions}


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            resource_group=dict(type="str", required=True),
            location=dict(type="str"),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            distribution=dict(type="str", default="auto"),
            infrastructure=dict(type="str", default="auto"),
            oidc_issuer=dict(type="bool", default=False),
            workload_identity=dict(type="bool", default=False),
            dataplane_endpoint=dict(type="str", fallback=(env_fallback, ["ARCWI_ARC_DATAPLANE_ENDPOINT"])),
            release_train=dict(type="str", default="stable"),
            helm_binary=dict(type="path", default="helm"),
            wait_timeout=dict(type="int", default=600),
            **tags_spec(),
            **state_spec(),
        ),
        libraries={"azure-mgmt-hybridkubernetes": HK_IMPORT_ERROR, "azure-mgmt-resource": RESOURCE_IMPORT_ERROR,
                   "kubernetes": _k8s.K8S_IMPORT_ERROR},
        supports_check_mode=True,
    )
    p = module.params
    if p["workload_identity"] and not p["oidc_issuer"] and p["state"] == "present":
        # az documents the two together; whether Azure refuses the webhook alone is not confirmed, so warn only
        module.warn("workload_identity without oidc_issuer: Arc's webhook injects tokens no Arc-hosted issuer vouches "
                    "for; with a self-hosted issuer this is intended, otherwise set oidc_issuer: true")
    try:
        validate(p)
        deadline = time.monotonic() + p["wait_timeout"]
        cluster = Cluster(p["kubeconfig"], p["context"])
        helm = Helm(module, p["helm_binary"], p["kubeconfig"], p["context"])
        result = (present if p["state"] == "present" else absent)(module, p, cluster, helm, deadline)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        if isinstance(exc, _k8s.ApiException):
            module.fail_json(msg=_k8s.api_error_message(exc))
        if RESOURCE_IMPORT_ERROR is None and isinstance(exc, HttpResponseError) and not isinstance(exc, ArcwiError):
            code = getattr(exc.error, "code", None)
            module.fail_json(msg=f"Azure: HTTP {exc.status_code} {code}: {getattr(exc.error, 'message', exc)}",
                             status=exc.status_code, code=code)
        module.fail_from(exc)
    extra = {"actions": result["actions"]}
    if "providers" in result:
        extra["providers"] = result["providers"]
    module.exit_with_state(result["changed"], "connected_cluster", result["before"], result["after"], **extra)


def validate(p) -> None:
    arc.validate_cluster_name(p["name"])
    validate_resource_group_name(p["resource_group"])
    if p["state"] == "present" and not (p["location"] or "").strip():
        raise arc.ArcError("location is required when state=present")
    if p["distribution"] not in arc.DISTRIBUTIONS:
        raise arc.ArcError(f"distribution must be one of {', '.join(arc.DISTRIBUTIONS)}, got {p['distribution']!r}")
    if p["infrastructure"] not in arc.INFRASTRUCTURES:
        raise arc.ArcError(f"infrastructure must be one of {', '.join(arc.INFRASTRUCTURES)}, "
                           f"got {p['infrastructure']!r}")
    if not 1 <= p["wait_timeout"] <= 7200:
        raise arc.ArcError(f"wait_timeout must be between 1 and 7200 seconds, got {p['wait_timeout']}")
    if p["dataplane_endpoint"] and not p["dataplane_endpoint"].startswith("https://"):
        raise arc.ArcError(f"dataplane_endpoint must be an https URL, got {p['dataplane_endpoint']!r}")


if __name__ == "__main__":
    main()
