"""The stages that make the candidate, each on its own: a table of situations (the use case
and what the registry shows) and exactly the changes the stage adds and the version it
finds. The evaluation gate has its own file."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.lineage import Alias
from reconciler.observe.state import Route, VersionSnapshot
from reconciler.plan import build_stages
from reconciler.plan.model import (
    NEW_BASE,
    Action,
    AliasesBefore,
    PromoteAfter,
    ReasonCode,
    RegisterAfter,
    RegisterBefore,
    ServingBefore,
    ShiftAfter,
    TrainAfter,
)
from reconciler.spec.identity import UseCaseIdentity, identify
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import ModelSource, TrainingMethod
from tests.plan.worlds import (
    FACTION,
    NPC,
    STORY,
    Build,
    Expect,
    Expected,
    added,
    champion_deleted,
    converged,
    planned,
    routes,
)

NPC_DATA = "desired_state/datasets/npc_dialogue/initial.jsonl"


def found_version(found: VersionSnapshot | None) -> str | None:
    return found.version if found else None


def npc_data_edited(desired: DesiredState) -> UseCaseIdentity:
    """The keys after someone edits npc-dialogue's training examples."""
    edited = identify(desired.use_case(NPC), {NPC_DATA: "sha256:" + "e" * 64}, [])
    shipped = desired.identities[NPC]
    assert edited.base_key == shipped.base_key and edited.target_key != shipped.target_key
    return edited


# --- register -------------------------------------------------------------------------------


def npc_base(i: UseCaseIdentity) -> RegisterAfter:
    """The base version npc-dialogue asks for, as a register change records it."""
    return RegisterAfter(
        registered_model=NPC,
        source=ModelSource.LOCAL,
        reference="models/tiny-base",
        revision="tiny-v1",
        license="apache-2.0",
        role="base",
        key=i.base_key,
    )


def npc_base_beside(i: UseCaseIdentity, *, versions: int) -> list[Expect]:
    """The base registered into a model that already holds `versions` other versions."""
    before = RegisterBefore(registered_model=NPC, versions=versions)
    return [Expect(Action.REGISTER, ReasonCode.NEW_BASE_VERSION, before=before, after=npc_base(i))]


REGISTER_CASES: list[tuple[str, str, Build, Expected, str | None]] = [
    (
        "no registered model: create it with the base as its first version",
        NPC,
        None,
        lambda i: [Expect(Action.REGISTER, ReasonCode.NEW_REGISTERED_MODEL, after=npc_base(i))],
        None,
    ),
    (
        "model without the base: register it beside the other versions",
        NPC,
        lambda w: w.version("1", "sha256:other").version("2", "sha256:another"),
        lambda i: npc_base_beside(i, versions=2),
        None,
    ),
    (
        "external model: registered as external, with no revision",
        STORY,
        None,
        lambda i: [
            Expect(
                Action.REGISTER,
                ReasonCode.NEW_REGISTERED_MODEL,
                after=RegisterAfter(
                    registered_model=STORY,
                    source=ModelSource.OPENAI_COMPATIBLE,
                    reference="narrator-large",
                    revision=None,
                    license="proprietary",
                    role="external",
                    key=i.base_key,
                ),
            )
        ],
        None,
    ),
    ("base found by key, whatever its number", NPC, lambda w: w.base("4"), lambda i: [], "4"),
    ("the newest of two bases", NPC, lambda w: w.base("2").base("5"), lambda i: [], "5"),
    (
        "a base whose registration failed is registered again",
        NPC,
        lambda w: w.not_ready("1", w.identity.base_key),
        lambda i: npc_base_beside(i, versions=1),
        None,
    ),
]


@pytest.mark.parametrize(
    ("title", "name", "build", "expected", "found"),
    REGISTER_CASES,
    ids=[c[0] for c in REGISTER_CASES],
)
def test_register(
    desired: DesiredState,
    title: str,
    name: str,
    build: Build,
    expected: Expected,
    found: str | None,
) -> None:
    p, base = build_stages.register(planned(desired, name, build))
    assert added(p) == expected(desired.identities[name])
    assert found_version(base) == found


# --- serve the base first -------------------------------------------------------------------


def base_serves(label: str, *, replaces: str | None = None, shift: bool = True) -> list[Expect]:
    promote = Expect(
        Action.PROMOTE,
        ReasonCode.BASE_SERVES_FIRST,
        before=AliasesBefore(aliases={Alias.CHAMPION: replaces}),
        after=PromoteAfter(aliases={Alias.CHAMPION: label, Alias.CHALLENGER: None}),
    )
    route = Expect(
        Action.SHIFT,
        ReasonCode.ROUTE_TO_CHAMPION,
        before=ServingBefore(routes=[]),
        after=ShiftAfter(routes=routes((label, 100))),
    )
    return [promote, route] if shift else [promote]


SERVE_BASE_CASES: list[tuple[str, Build, list[Expect], str | None]] = [
    ("a champion serves: nothing to do", converged, [], None),
    (
        "nothing registered: the base this plan registers serves",
        None,
        base_serves(NEW_BASE),
        NEW_BASE,
    ),
    ("base registered, no champion: it serves", lambda w: w.base(), base_serves("1"), "1"),
    (
        "champion deleted from the registry: the base serves again",
        champion_deleted,
        base_serves("1", replaces="9"),
        "1",
    ),
    (
        "the base already takes all traffic: only the alias moves",
        lambda w: w.base().serving("1"),
        base_serves("1", shift=False),
        "1",
    ),
]


@pytest.mark.parametrize(
    ("title", "build", "expected", "planned_champion"),
    SERVE_BASE_CASES,
    ids=[c[0] for c in SERVE_BASE_CASES],
)
def test_serve_base_first(
    desired: DesiredState,
    title: str,
    build: Build,
    expected: list[Expect],
    planned_champion: str | None,
) -> None:
    p = planned(desired, NPC, build)
    p = build_stages.serve_base_first(p, p.find(p.identity.base_key))
    assert added(p) == expected
    assert p.planned_champion == planned_champion
    # Later stages see the base as serving all traffic.
    if planned_champion is not None:
        assert p.champion() == planned_champion and p.champion_is_real()
        assert p.current_routes() == (Route(planned_champion, 100),)


# --- train ----------------------------------------------------------------------------------


def training(
    i: UseCaseIdentity,
    base: str,
    *,
    method: TrainingMethod = TrainingMethod.LORA,
    data: str = NPC_DATA,
    logs: bool = True,
) -> list[Expect]:
    after = TrainAfter(
        key=i.target_key,
        base_key=i.base_key,
        base_version=base,
        method=method,
        datasets=[data],
        historical_logs=logs,
    )
    return [Expect(Action.TRAIN, ReasonCode.NOT_TRAINED, after=after)]


TRAIN_CASES: list[
    tuple[str, str, Build, Callable[[DesiredState], UseCaseIdentity] | None, Expected, str | None]
] = [
    (
        "external model: never trained, the base is the candidate",
        STORY,
        lambda w: w.base(),
        None,
        lambda i: [],
        "1",
    ),
    (
        "trained for this key: not trained again",
        NPC,
        lambda w: w.base().target("2"),
        None,
        lambda i: [],
        "2",
    ),
    (
        "nothing trained: fine-tune the registered base on its data and logs",
        NPC,
        lambda w: w.base("1"),
        None,
        lambda i: training(i, "1"),
        None,
    ),
    (
        "base not registered yet: trained from the base this plan registers",
        NPC,
        None,
        None,
        lambda i: training(i, NEW_BASE),
        None,
    ),
    (
        "training data edited: a new key, trained again from the same base",
        NPC,
        lambda w: w.base().target("2"),
        npc_data_edited,
        lambda i: training(i, "1"),
        None,
    ),
    (
        "a training whose registration failed is trained again",
        NPC,
        lambda w: w.base().not_ready("2", w.identity.target_key),
        None,
        lambda i: training(i, "1"),
        None,
    ),
    (
        "full fine-tune on the initial data only",
        FACTION,
        lambda w: w.base("3"),
        None,
        lambda i: training(
            i,
            "3",
            method=TrainingMethod.FULL,
            data="desired_state/datasets/faction_decision/initial.jsonl",
            logs=False,
        ),
        None,
    ),
]


@pytest.mark.parametrize(
    ("title", "name", "build", "keys", "expected", "found"),
    TRAIN_CASES,
    ids=[c[0] for c in TRAIN_CASES],
)
def test_train(
    desired: DesiredState,
    title: str,
    name: str,
    build: Build,
    keys: Callable[[DesiredState], UseCaseIdentity] | None,
    expected: Expected,
    found: str | None,
) -> None:
    identity = keys(desired) if keys else desired.identities[name]
    p = planned(desired, name, build, identity=identity)
    p, candidate = build_stages.train(p, p.find(identity.base_key))
    assert added(p) == expected(identity)
    assert found_version(candidate) == found
