"""ARM emulator: role definitions, role assignments, RBAC enforcement and management locks.

Sources: learn.microsoft.com/azure/role-based-access-control/built-in-roles (ids, actions);
role-based-access-control/troubleshooting (RoleAssignmentExists, PrincipalNotFound and principalType);
specification/authorization 2022-04-01; azure-resource-manager/management/lock-resources (ScopeLocked).
"""
from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.resources import ResourceManagementClient

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
UAA = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"


@pytest.fixture
def auth(sandbox):
    return sandbox.client(AuthorizationManagementClient)


@pytest.fixture
def principal_id(sandbox, resource_group, unique):
    with sandbox.settings(throttle_enabled=False):
        msi = sandbox.client(ManagedServiceIdentityClient)
        return msi.user_assigned_identities.create_or_update(resource_group, f"ra-{unique}",
                                                             {"location": "westeurope"}).principal_id


def reader_id(sandbox):
    return f"{sandbox.sub_scope}/providers/Microsoft.Authorization/roleDefinitions/{READER}"


@pytest.mark.parametrize("name,guid", [("Owner", OWNER), ("Contributor", CONTRIBUTOR), ("Reader", READER),
                                       ("User Access Administrator", UAA)])
def test_builtin_role_lookup_by_name(sandbox, auth, name, guid):
    found = list(auth.role_definitions.list(sandbox.sub_scope, filter=f"roleName eq '{name}'"))
    assert [d.name for d in found] == [guid]
    assert found[0].role_type == "BuiltInRole"
    assert auth.role_definitions.get(sandbox.sub_scope, guid).role_name == name


def test_unknown_role_name_finds_nothing(sandbox, auth):
    assert list(auth.role_definitions.list(sandbox.sub_scope, filter="roleName eq 'Reeder'")) == []


def test_role_assignment_create_is_unique_per_principal_role_scope(sandbox, auth, principal_id, resource_group):
    scope = f"{sandbox.sub_scope}/resourceGroups/{resource_group}"
    params = {"role_definition_id": reader_id(sandbox), "principal_id": principal_id,
              "principal_type": "ServicePrincipal"}
    name = str(uuid.uuid4())
    created = auth.role_assignments.create(scope, name, params)
    assert created.scope == scope and created.principal_id == principal_id
    # the same PUT again (same name) is accepted
    assert auth.role_assignments.create(scope, name, params).id == created.id
    # another name for the same principal+role+scope: 409 RoleAssignmentExists
    with pytest.raises(ResourceExistsError) as err:
        auth.role_assignments.create(scope, str(uuid.uuid4()), params)
    assert err.value.error.code == "RoleAssignmentExists"
    # listing: atScope() and principalId filters
    at_scope = list(auth.role_assignments.list_for_scope(scope, filter="atScope()"))
    assert created.id in [a.id for a in at_scope]
    mine = list(auth.role_assignments.list_for_subscription(filter=f"principalId eq '{principal_id}'"))
    assert [a.id for a in mine] == [created.id]
    auth.role_assignments.delete(scope, name)
    assert list(auth.role_assignments.list_for_subscription(filter=f"principalId eq '{principal_id}'")) == []
    assert auth.role_assignments.delete(scope, name) is None  # 204 on a missing assignment


def test_principal_not_found_during_replication_unless_principal_type(sandbox, auth, resource_group, unique):
    # Source: RBAC troubleshooting: set principalType to avoid PrincipalNotFound after creating a principal
    with sandbox.settings(principal_propagation_seconds=600.0, throttle_enabled=False):
        msi = sandbox.client(ManagedServiceIdentityClient)
        fresh = msi.user_assigned_identities.create_or_update(resource_group, f"fresh-{unique}",
                                                              {"location": "westeurope"})
        scope = f"{sandbox.sub_scope}/resourceGroups/{resource_group}"
        with pytest.raises(HttpResponseError) as err:
            auth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": reader_id(sandbox),
                                                                    "principal_id": fresh.principal_id})
        assert err.value.error.code == "PrincipalNotFound"
        assert "principalType" in err.value.error.message
        ok = auth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": reader_id(sandbox),
                                                                     "principal_id": fresh.principal_id,
                                                                     "principal_type": "ServicePrincipal"})
        assert ok.principal_type == "ServicePrincipal"


def test_role_assignment_refusals(sandbox, auth, principal_id, resource_group):
    scope = f"{sandbox.sub_scope}/resourceGroups/{resource_group}"
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(scope, "not-a-guid", {"role_definition_id": reader_id(sandbox),
                                                           "principal_id": principal_id})
    assert err.value.error.code == "InvalidRoleAssignmentId"
    bogus = f"{sandbox.sub_scope}/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}"
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": bogus,
                                                                "principal_id": principal_id,
                                                                "principal_type": "ServicePrincipal"})
    assert err.value.error.code == "RoleDefinitionDoesNotExist"
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": reader_id(sandbox),
                                                                "principal_id": str(uuid.uuid4()),
                                                                "principal_type": "ServicePrincipal"})
    assert err.value.error.code == "PrincipalNotFound"
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": reader_id(sandbox),
                                                                "principal_id": principal_id,
                                                                "principal_type": "User"})
    assert err.value.error.code == "UnmatchedPrincipalType"
    # a scope in a resource group that does not exist
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(f"{sandbox.sub_scope}/resourceGroups/missing-{uuid.uuid4().hex[:6]}",
                                     str(uuid.uuid4()), {"role_definition_id": reader_id(sandbox),
                                                         "principal_id": principal_id,
                                                         "principal_type": "ServicePrincipal"})
    assert err.value.status_code == 404


def test_contributor_cannot_assign_roles_but_can_create_identities(sandbox, resource_group, unique, principal_id):
    # Source: built-in Contributor: notActions Microsoft.Authorization/*/Write
    contributor = sandbox.principal(roles=[{"role": "Contributor"}], name=f"contrib-{unique}")
    credential = sandbox.credential(contributor["client_id"], contributor["secret"])
    with sandbox.settings(throttle_enabled=False):
        msi = sandbox.client(ManagedServiceIdentityClient, credential=credential)
        assert msi.user_assigned_identities.create_or_update(resource_group, f"by-contrib-{unique}",
                                                             {"location": "westeurope"}).client_id
    auth = sandbox.client(AuthorizationManagementClient, credential=credential)
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(sandbox.sub_scope, str(uuid.uuid4()), {"role_definition_id": reader_id(sandbox),
                                                                            "principal_id": principal_id,
                                                                            "principal_type": "ServicePrincipal"})
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Authorization/roleAssignments/write" in err.value.error.message


def test_reader_scoped_to_one_group_sees_only_that_group(sandbox, unique):
    rm = sandbox.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(f"rg-a-{unique}", {"location": "westeurope"})
    rm.resource_groups.create_or_update(f"rg-b-{unique}", {"location": "westeurope"})
    scoped = sandbox.principal(roles=[{"role": "Reader", "scope": f"{sandbox.sub_scope}/resourceGroups/rg-a-{unique}"}],
                               name=f"scoped-{unique}")
    client = sandbox.client(ResourceManagementClient,
                            credential=sandbox.credential(scoped["client_id"], scoped["secret"]))
    assert client.resource_groups.get(f"rg-a-{unique}").name == f"rg-a-{unique}"
    with pytest.raises(HttpResponseError) as err:
        client.resource_groups.get(f"rg-b-{unique}")
    assert err.value.status_code == 403


def test_custom_role_definition_grants_exactly_its_actions(sandbox, auth, resource_group, unique):
    guid = str(uuid.uuid4())
    definition = auth.role_definitions.create_or_update(sandbox.sub_scope, guid, {
        "role_name": f"identity-reader-{unique}", "description": "test", "role_type": "CustomRole",
        "permissions": [{"actions": ["Microsoft.ManagedIdentity/userAssignedIdentities/read",
                                     "Microsoft.Resources/subscriptions/resourceGroups/read"]}],
        "assignable_scopes": [sandbox.sub_scope]})
    assert definition.role_type == "CustomRole"
    custom = sandbox.principal(roles=[{"role": guid}], name=f"custom-{unique}")
    credential = sandbox.credential(custom["client_id"], custom["secret"])
    msi = sandbox.client(ManagedServiceIdentityClient, credential=credential)
    assert list(msi.user_assigned_identities.list_by_resource_group(resource_group)) == []
    with pytest.raises(HttpResponseError) as err:
        msi.user_assigned_identities.create_or_update(resource_group, f"nope-{unique}", {"location": "westeurope"})
    assert err.value.status_code == 403


def test_can_not_delete_lock_blocks_delete_of_the_scope_and_children(sandbox, resource_group, unique):
    # Source: lock-resources: CanNotDelete is inherited by child resources; ScopeLocked 409
    locks = sandbox.client(ManagementLockClient)
    with sandbox.settings(throttle_enabled=False):
        msi = sandbox.client(ManagedServiceIdentityClient)
        msi.user_assigned_identities.create_or_update(resource_group, f"locked-{unique}", {"location": "westeurope"})
        locks.management_locks.create_or_update_at_resource_group_level(resource_group, "keep",
                                                                        {"level": "CanNotDelete", "notes": "test"})
        with pytest.raises(HttpResponseError) as err:
            msi.user_assigned_identities.delete(resource_group, f"locked-{unique}")
        assert err.value.status_code == 409 and err.value.error.code == "ScopeLocked"
        rm = sandbox.client(ResourceManagementClient)
        with pytest.raises(HttpResponseError) as err:
            rm.resource_groups.begin_delete(resource_group).result()
        assert err.value.error.code == "ScopeLocked"
        # writes are still allowed under CanNotDelete
        msi.user_assigned_identities.create_or_update(resource_group, f"locked-{unique}",
                                                      {"location": "westeurope", "tags": {"a": "b"}})
        locks.management_locks.delete_at_resource_group_level(resource_group, "keep")
        msi.user_assigned_identities.delete(resource_group, f"locked-{unique}")


def test_read_only_lock_blocks_writes(sandbox, resource_group, unique):
    locks = sandbox.client(ManagementLockClient)
    locks.management_locks.create_or_update_at_resource_group_level(resource_group, "frozen", {"level": "ReadOnly"})
    try:
        with sandbox.settings(throttle_enabled=False):
            msi = sandbox.client(ManagedServiceIdentityClient)
            with pytest.raises(HttpResponseError) as err:
                msi.user_assigned_identities.create_or_update(resource_group, f"ro-{unique}",
                                                              {"location": "westeurope"})
            assert err.value.error.code == "ScopeLocked"
    finally:
        locks.management_locks.delete_at_resource_group_level(resource_group, "frozen")


def test_lock_level_validated_and_reader_cannot_lock(sandbox, resource_group, unique):
    locks = sandbox.client(ManagementLockClient)
    with pytest.raises(HttpResponseError) as err:
        locks.management_locks.create_or_update_at_resource_group_level(resource_group, "bad", {"level": "NoDelete"})
    assert err.value.status_code == 400
    reader = sandbox.principal(roles=[{"role": "Reader"}], name=f"lock-reader-{unique}")
    rlocks = sandbox.client(ManagementLockClient, credential=sandbox.credential(reader["client_id"], reader["secret"]))
    with pytest.raises(HttpResponseError) as err:
        rlocks.management_locks.create_or_update_at_resource_group_level(resource_group, "mine",
                                                                         {"level": "CanNotDelete"})
    assert err.value.status_code == 403


# ---- provider registration needs the provider's own action -------------------------------------------------
def test_registering_a_provider_needs_its_own_register_action(sandbox, auth, unique):
    """learn.microsoft.com/azure/role-based-access-control/permissions: "Microsoft.Kubernetes/register/action
    - Registers Subscription with Microsoft.Kubernetes resource provider"; resource-providers-and-types:
    registering needs "the /register/action operation for the resource provider"."""
    role_name = f"register-kubernetes-{unique}"
    auth.role_definitions.create_or_update(sandbox.sub_scope, str(uuid.uuid4()), {
        "role_name": role_name, "role_type": "CustomRole", "assignable_scopes": [sandbox.sub_scope],
        "permissions": [{"actions": ["Microsoft.Resources/subscriptions/read", "Microsoft.Kubernetes/register/action"]}]})
    operator = sandbox.principal(roles=[{"role": role_name}], name=f"registrar-{unique}")
    providers = sandbox.client(ResourceManagementClient,
                               credential=sandbox.credential(operator["client_id"], operator["secret"])).providers
    assert providers.register("Microsoft.Kubernetes").namespace == "Microsoft.Kubernetes"
    with pytest.raises(HttpResponseError) as refused:
        providers.register("Microsoft.ExtendedLocation")
    assert refused.value.status_code == 403 and refused.value.error.code == "AuthorizationFailed"
    assert "'Microsoft.ExtendedLocation/register/action'" in refused.value.error.message
