# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation of the shared Azure connection options (plugins/module_utils/_azure.py)."""


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  subscription_id:
    description:
      - The Azure subscription the module works in.
      - Defaults to the E(AZURE_SUBSCRIPTION_ID) environment variable.
    type: str
    version_added: 0.1.0
  client_id:
    description:
      - Client (application) ID of a service principal when O(secret) is set.
      - With O(auth_source=msi) or O(auth_source=workload_identity), or with O(auth_source=auto) and
        no O(secret), the client ID of the managed identity to use.
      - Defaults to the E(AZURE_CLIENT_ID) environment variable.
    type: str
    version_added: 0.1.0
  secret:
    description:
      - Client secret of the service principal O(client_id) in tenant O(tenant).
      - With O(auth_source=auto), setting it selects that service principal instead of the
        C(DefaultAzureCredential) chain.
      - Defaults to the E(AZURE_SECRET) or E(AZURE_CLIENT_SECRET) environment variable.
    type: str
    version_added: 0.1.0
  tenant:
    description:
      - Microsoft Entra tenant ID of the service principal or workload identity.
      - Defaults to the E(AZURE_TENANT) or E(AZURE_TENANT_ID) environment variable.
    type: str
    version_added: 0.1.0
  cloud_environment:
    description:
      - The Azure cloud, by name (V(AzureCloud), V(AzureChinaCloud), V(AzureUSGovernment)), or a
        cloud metadata URL as for O(cloud_metadata_url).
      - When neither this nor O(cloud_metadata_url) is set, the E(ARCWI_CLOUD_METADATA_URL)
        environment variable is used, then E(AZURE_CLOUD_ENVIRONMENT), then V(AzureCloud).
    type: str
    version_added: 0.1.0
  cloud_metadata_url:
    description:
      - Discover the cloud the Azure Stack way, from ARM's cloud metadata endpoint, for example
        C(https://management.example/metadata/endpoints?api-version=2022-09-01). A bare ARM endpoint
        URL is accepted too; C(/metadata/endpoints) and the api-version are then added.
      - The ARM endpoint, the Microsoft Entra authority and the ARM token audience all come from
        the answer; the list form (api-version 2019-05-01 and later) and Azure Stack Hub's older
        single-object form (api-version C(2015-01-01), C(1.0)) are understood.
      - Mutually exclusive with O(cloud_environment). Defaults to the E(ARCWI_CLOUD_METADATA_URL)
        environment variable (which the sandbox's C(env) command prints).
    type: str
    version_added: 0.1.0
  auth_source:
    description:
      - Where the credential comes from.
      - V(auto) uses the service principal O(client_id)/O(secret)/O(tenant) when O(secret) is set,
        otherwise the C(DefaultAzureCredential) chain of azure-identity (environment, workload
        identity, managed identity, Azure CLI, ...).
      - V(env) reads a service principal from the environment variables of azure-identity's
        C(EnvironmentCredential).
      - V(cli) uses the account the Azure CLI is logged in with.
      - V(msi) uses a managed identity (user-assigned when O(client_id) is set).
      - V(workload_identity) exchanges the Kubernetes service account token in
        E(AZURE_FEDERATED_TOKEN_FILE) for O(client_id) in O(tenant).
      - Defaults to the E(ANSIBLE_AZURE_AUTH_SOURCE) environment variable, then V(auto).
    type: str
    choices: [auto, env, cli, msi, workload_identity]
    default: auto
    version_added: 0.1.0
requirements:
  - python >= 3.10
  - azure-core >= 1.30.0
  - azure-identity >= 1.15.0
notes:
  - The Microsoft Entra authority is the cloud's login endpoint, unless the E(AZURE_AUTHORITY_HOST)
    environment variable is set (as the workload identity webhook does in pods); it then wins, with
    a warning when the two differ.
  - Off Azure's public and sovereign clouds (any other authority host) instance discovery is
    disabled, so azure-identity does not ask C(login.microsoftonline.com) about the authority.
    With O(auth_source=auto), the workload identity part of C(DefaultAzureCredential) only follows
    E(AZURE_AUTHORITY_HOST); use O(auth_source=workload_identity) to follow the cloud.
  - TLS verification uses the system trust store or E(REQUESTS_CA_BUNDLE).
  - ARM calls are retried on HTTP 429, on HTTP 500, 502, 503, 504 and connection errors of
    idempotent requests, honouring C(Retry-After), with jittered exponential backoff and a bound on
    attempts and time; HTTP 409 only
    for the conflicts a module declares transient (concurrent writes of federated identity
    credentials). No other 4xx answer is retried. Azure's error code and message are part of the
    failure message.
  - Set these options once for many tasks with the C(group/arcwi.workload_identity.azure) action
    group in C(module_defaults).
"""
