"""A fleet: site.yml's Azure half (bench/fleet.yml) for 10 simulated clusters with forks=10, each with
its own issuer, all sharing one identity; then the plan of the federated credentials refusing what
Azure would refuse (more than 20 per identity, one name claimed with two issuers) before any FIC write,
and identity_shards spreading the clusters.

Sources: the 20-FIC limit and the refusal of concurrent FIC writes under one identity are documented in
learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations; the emulator applies
both (sandbox/server/arm/msi.py), and throttles identity writes (2/s per subscription) so 429s reach
the wire.
"""
from __future__ import annotations

import hashlib
import importlib.util
import uuid

import pytest
from azure.mgmt.msi import ManagedServiceIdentityClient

from .conftest import REPO

_spec = importlib.util.spec_from_file_location("bench_fleet", REPO / "bench" / "fleet.py")
fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet)

CLUSTERS = 10


@pytest.fixture(scope="module")
def ten(sandbox, tmp_path_factory):
    """The fleet of 10, converged twice: (inventory, tag, first run, second run)."""
    workdir = tmp_path_factory.mktemp("fleet")
    tag = uuid.uuid4().hex[:6]
    inv = fleet.inventory(workdir / "fleet.json", CLUSTERS, tag, 0, workdir / "keys")
    first = fleet.run(sandbox, inv, forks=10)
    second = fleet.run(sandbox, inv, forks=10)
    return inv, tag, first, second


def test_ten_clusters_converge_with_nothing_surfaced_and_rerun_writes_nothing(sandbox, ten):
    _, tag, first, second = ten
    assert first["rc"] == 0, first["stdout"][-4000:] + first["stderr"][-2000:]
    assert first["hosts"] == CLUSTERS and first["failed_hosts"] == []
    assert first["surfaced_429"] == 0 and first["surfaced_409"] == 0
    assert first["fic_writes"] == CLUSTERS
    # one FIC per cluster on the shared identity, each naming its cluster's own issuer
    msi = sandbox.client(ManagedServiceIdentityClient)
    fics = list(msi.federated_identity_credentials.list(f"rg-fleet-{tag}", f"id-fleet-{tag}"))
    assert sorted(f.name for f in fics) == [f"cluster-{i:02d}-demo-workload" for i in range(CLUSTERS)]
    assert len({f.issuer for f in fics}) == CLUSTERS
    assert {f.subject for f in fics} == {"system:serviceaccount:demo:workload"}

    assert second["rc"] == 0, second["stdout"][-4000:]
    assert second["changed"] == 0
    assert second["writes"] == 0, "the no-op re-run wrote to ARM"


def test_one_fic_name_claimed_with_two_issuers_fails_before_any_write(sandbox, ten):
    inv, tag, first, _ = ten
    assert first["rc"] == 0
    mark = sandbox.mark()
    run = fleet.run(sandbox, inv, 10, ["-e", "workload_identity_fic_name=shared-name"])
    assert run["rc"] != 0
    assert "workload_identity_fic_name shared-name of identity id-fleet-" in run["stdout"]
    assert "is claimed by hosts cluster-00, cluster-01" in run["stdout"]
    assert "with different issuers or subjects" in run["stdout"]
    assert [r for r in sandbox.requests_since(mark, "arm") if "/federatedIdentityCredentials/" in r["path"]
            and r["method"] in fleet.WRITES] == []


def test_more_than_twenty_per_identity_fails_with_the_count_and_shards_spread_them(sandbox, tmp_path):
    tag = uuid.uuid4().hex[:6]
    group, identity = f"rg-fleet-{tag}", f"id-fleet-{tag}"
    inv = fleet.inventory(tmp_path / "fleet.json", 3, tag, 0, tmp_path / "keys")
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(group, {"location": "westeurope"})
    msi = sandbox.client(ManagedServiceIdentityClient)
    with sandbox.settings(throttle_enabled=False, fic_write_seconds=0):
        msi.user_assigned_identities.create_or_update(group, identity, {"location": "westeurope"})
        for i in range(18):  # 18 FICs of other workloads: the fleet's 3 would make 21
            msi.federated_identity_credentials.create_or_update(
                group, identity, f"other-{i:02d}",
                {"issuer": f"https://other.example/{i}/", "subject": "system:serviceaccount:x:y",
                 "audiences": ["api://AzureADTokenExchange"]})
    mark = sandbox.mark()
    run = fleet.run(sandbox, inv, 3)
    assert run["rc"] != 0
    assert (f"identity {identity} would hold 21 federated credentials (18 existing, 3 new from this play);"
            " Azure allows 20 per identity: set identity_shards") in run["stdout"]
    assert [r for r in sandbox.requests_since(mark, "arm") if "/federatedIdentityCredentials/" in r["path"]
            and r["method"] in fleet.WRITES] == []
    assert len(list(msi.federated_identity_credentials.list(group, identity))) == 18

    # identity_shards: 3 -> each cluster's FIC goes to identity-NN picked by a stable hash of the host
    run = fleet.run(sandbox, inv, 3, ["-e", "identity_shards=3"])
    assert run["rc"] == 0, run["stdout"][-4000:]
    for i in range(3):
        host = f"cluster-{i:02d}"
        shard = int(hashlib.sha256(host.encode()).hexdigest()[:8], 16) % 3
        names = [f.name for f in msi.federated_identity_credentials.list(group, f"{identity}-{shard:02d}")]
        assert f"{host}-demo-workload" in names
    assert len(list(msi.federated_identity_credentials.list(group, identity))) == 18


def test_teardown_of_one_cluster_keeps_the_shared_identity_and_the_last_one_removes_it(sandbox, ten):
    """teardown.yml --limit one cluster of the fleet: its FIC and its issuer go, the identity (and its
    role assignment) stays while the other clusters' FICs are on it; the whole fleet's teardown then
    removes the identity."""
    inv, tag, first, _ = ten
    assert first["rc"] == 0
    group, identity = f"rg-fleet-{tag}", f"id-fleet-{tag}"
    msi = sandbox.client(ManagedServiceIdentityClient)
    teardown = REPO / "playbooks" / "teardown.yml"
    extra = ["-e", "arc_enabled=false", "-e", f"kind_cluster_kind_binary={REPO / 'sandbox' / 'bin' / 'kind'}"]
    run = fleet.run(sandbox, inv, 10, [*extra, "--limit", "cluster-00"], playbook=teardown)
    assert run["rc"] == 0, run["stdout"][-4000:]
    assert f"identity {identity} is kept with its role assignments" in run["stdout"]
    names = sorted(f.name for f in msi.federated_identity_credentials.list(group, identity))
    assert names == [f"cluster-{i:02d}-demo-workload" for i in range(1, CLUSTERS)]

    run = fleet.run(sandbox, inv, 10, extra, playbook=teardown)
    assert run["rc"] == 0, run["stdout"][-4000:]
    assert identity not in [i.name for i in msi.user_assigned_identities.list_by_resource_group(group)]
    again = fleet.run(sandbox, inv, 10, extra, playbook=teardown)
    assert again["rc"] == 0 and again["changed"] == 0 and again["writes"] == 0
