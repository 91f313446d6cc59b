"""What each role may do, where: the permission matrix, both team models, slices and the
filter combination that applies them."""

from __future__ import annotations

import pytest

from tests.unit.governance.conftest import Org
from viewfinder.errors import (
    AuthenticationFailed,
    DatasetNotFound,
    FilterSyntaxError,
    InvalidInput,
    PermissionDenied,
)
from viewfinder.governance import orgs, roles
from viewfinder.governance.policy import (
    Action,
    combine_filter,
    decide,
    visible_datasets,
)
from viewfinder.governance.principal import ANONYMOUS, SYSTEM
from viewfinder.services import access, look

A = Action
DATASET_ACTIONS = [A.DATASET_READ, A.DATASET_WRITE, A.DATASET_EXPORT, A.DATASET_RELEASE]
# The matrix a head of DataOps signs off, written out (not derived from roles.PERMISSIONS).
EXPECTED = {
    "head_of_dataops": set(Action),
    "labeling_manager": {A.DATASET_READ, A.LABELING_MANAGE, A.LABELING_QUEUE},
    "data_engineer": {A.DATASET_READ, A.DATASET_WRITE, A.DATASET_EXPORT, A.DATASET_RELEASE,
                      A.DATASET_CREATE},
    "curator": {A.DATASET_READ, A.DATASET_WRITE, A.DATASET_EXPORT},
    "labeler": {A.LABELING_QUEUE},
    "viewer": {A.DATASET_READ},
}


def _allowed(gov: Org, p, action: Action) -> bool:  # type: ignore[no-untyped-def]
    kw: dict[str, str] = {}
    if action in DATASET_ACTIONS:
        kw = {"dataset": "street"}
    elif action is A.DATASET_CREATE:
        kw = {"project_id": orgs.get_project(gov.ws, "peds-eu").id}
    try:
        decide(gov.ws, p, action, **kw)
        return True
    except (PermissionDenied, DatasetNotFound):
        return False


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_role_may_do_exactly_its_actions(gov: Org, role: str) -> None:
    p = gov.user(f"u-{role.replace('_', '-')}", role, ("org", "acme"))
    assert {a for a in Action if _allowed(gov, p, a)} == EXPECTED[role]


def test_a_role_without_read_does_not_see_the_dataset_at_all(gov: Org) -> None:
    labeler = gov.user("lab", "labeler", ("project", "peds-eu"))
    with pytest.raises(DatasetNotFound, match="street"):
        decide(gov.ws, labeler, A.DATASET_READ, dataset="street")
    with pytest.raises(DatasetNotFound):  # same answer as a dataset that does not exist
        decide(gov.ws, labeler, A.DATASET_READ, dataset="no-such")
    assert visible_datasets(gov.ws, labeler) == []
    assert access.list_datasets(gov.ws, labeler) == []
    assert access.labeling_queue(gov.ws, labeler) == []  # no tasks exist yet
    viewer = gov.user("v", "viewer", ("project", "peds-eu"))
    with pytest.raises(PermissionDenied):
        access.labeling_queue(gov.ws, viewer)
    with pytest.raises(PermissionDenied):  # seen but not allowed
        decide(gov.ws, viewer, A.DATASET_WRITE, dataset="street")


def test_centralized_team_model_org_roles_reach_every_project(gov: Org) -> None:
    central = gov.user("central-eng", "data_engineer", ("org", "acme"))
    assert [d.name for d in visible_datasets(gov.ws, central)] == ["loose", "signs", "street"]
    for name in ("street", "signs"):
        decide(gov.ws, central, A.DATASET_WRITE, dataset=name)


def test_embedded_team_model_team_roles_stay_in_their_team(gov: Org) -> None:
    embedded = gov.user("emb", "curator", ("team", "vision-eu"))
    assert [d.name for d in visible_datasets(gov.ws, embedded)] == ["street"]
    decide(gov.ws, embedded, A.DATASET_WRITE, dataset="street")
    for hidden in ("signs", "loose"):  # other team's project; dataset in no project
        with pytest.raises(DatasetNotFound):
            decide(gov.ws, embedded, A.DATASET_READ, dataset=hidden)
    proj = gov.user("proj", "viewer", ("project", "signs"))
    assert [d.name for d in visible_datasets(gov.ws, proj)] == ["signs"]
    assert [p.name for p in access.list_projects(gov.ws, proj)] == ["signs"]
    # a team-level head administers members of its team, not of the organization
    head = gov.user("team-head", "head_of_dataops", ("team", "vision-eu"))
    access.grant_role(gov.ws, head, "proj", "viewer", scope_kind="project", scope_name="peds-eu")
    with pytest.raises(PermissionDenied):
        access.grant_role(gov.ws, head, "proj", "viewer", scope_kind="org", scope_name="acme")
    with pytest.raises(PermissionDenied):
        access.list_users(gov.ws, head)  # user accounts are organization-level


def test_system_may_everything_anonymous_nothing(gov: Org) -> None:
    assert decide(gov.ws, SYSTEM, A.MEMBERS_ADMIN).slice is None
    with pytest.raises(AuthenticationFailed):
        decide(gov.ws, ANONYMOUS, A.DATASET_READ, dataset="street")
    assert visible_datasets(gov.ws, ANONYMOUS) == []


def test_slices_unsliced_binding_wins_and_several_slices_are_ored(gov: Org) -> None:
    p = gov.user("cur", "curator", ("project", "peds-eu"), slice='metadata.region == "APAC"')
    assert decide(gov.ws, p, A.DATASET_READ, dataset="street").slice == 'metadata.region == "APAC"'
    roles.grant(gov.ws, SYSTEM, "cur", "curator", scope_kind="team", scope_name="vision-eu",
                slice='split == "val"')
    both = decide(gov.ws, p, A.DATASET_READ, dataset="street").slice
    assert access.count(gov.ws, p, "street") == look.count(
        gov.ws, "street", 'metadata.region == "APAC" or split == "val"')
    assert both is not None and " or " in both
    roles.grant(gov.ws, SYSTEM, "cur", "viewer", scope_kind="org", scope_name="acme")
    assert decide(gov.ws, p, A.DATASET_READ, dataset="street").slice is None  # viewer is unsliced
    assert decide(gov.ws, p, A.DATASET_WRITE, dataset="street").slice == both  # but cannot write


def test_only_curator_bindings_take_a_slice_and_it_must_parse(gov: Org) -> None:
    gov.user("x")
    with pytest.raises(InvalidInput, match="slice"):
        roles.grant(gov.ws, SYSTEM, "x", "viewer", scope_kind="org", scope_name="acme",
                    slice='split == "val"')
    with pytest.raises(FilterSyntaxError):
        roles.grant(gov.ws, SYSTEM, "x", "curator", scope_kind="org", scope_name="acme",
                    slice='metadata.region == "APAC") or (1 == 1')
    assert roles.list_bindings(gov.ws, "x") == []


@pytest.mark.parametrize("hostile", ['") or (1==1', 'split == "train" or true', "1 == 1",
                                     'split == "train") or (split != "train"', ""])
def test_hostile_filters_are_rejected(hostile: str) -> None:
    if not hostile:
        assert combine_filter('metadata.region == "APAC"', hostile) == 'metadata.region == "APAC"'
        return
    with pytest.raises(FilterSyntaxError):
        combine_filter('metadata.region == "APAC"', hostile)


def test_a_filter_that_parses_cannot_widen_the_slice(gov: Org) -> None:
    p = gov.user("cur", "curator", ("org", "acme"), slice='metadata.region == "APAC"')
    apac = look.count(gov.ws, "street", 'metadata.region == "APAC"')
    assert 0 < apac < 12
    for f in ('split == "train" or split != "train"', 'not (metadata.region == "APAC")',
              'metadata.region == "EMEA" or metadata.region == "APAC"', 'count() >= 0'):
        n = access.count(gov.ws, p, "street", f)
        assert n == look.count(gov.ws, "street", f'metadata.region == "APAC" and ({f})')
        assert n <= apac
    assert access.count(gov.ws, p, "street", 'not (metadata.region == "APAC")') == 0


def test_label_slices_keep_their_meaning_when_combined(gov: Org) -> None:
    """A slice on labels selects samples; ANDing a label filter must not fuse the two
    into a test on one label."""
    classes = sorted(look.stats(gov.ws, "street")["classes"])
    slice_ = f'label.class == "{classes[0]}"'
    filt = f'label.class == "{classes[1]}"'
    p = gov.user("cur", "curator", ("org", "acme"), slice=slice_)
    expected = look.count(gov.ws, "street", f"any({slice_}) and any({filt})")
    assert expected > 0  # samples holding both classes exist in this fixture
    assert access.count(gov.ws, p, "street", filt) == expected


def test_a_project_is_created_with_its_datasets_or_not_at_all(gov: Org) -> None:
    from viewfinder.errors import AlreadyExists

    with pytest.raises(AlreadyExists, match="peds-eu"):  # street already belongs to peds-eu
        orgs.create_project(gov.ws, SYSTEM, "grab", org="acme", dataset_names=["loose", "street"])
    assert "grab" not in [p.name for p in orgs.list_projects(gov.ws)]
    assert orgs.project_of_dataset(gov.ws, "loose") is None
    p = orgs.create_project(gov.ws, SYSTEM, "misc", org="acme", dataset_names=["loose"])
    assert p.datasets == ["loose"] and p.team_id is None
