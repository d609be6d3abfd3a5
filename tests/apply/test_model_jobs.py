"""Model work as jobs: what travels to another machine, and what each job asks of it."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.apply.model_jobs import (
    DesiredStateChangedError,
    EvaluateJob,
    ModelWork,
    TrainJob,
    resource_request,
)
from reconciler.jobs.interface import GIB, ResourceRequest
from reconciler.spec.model import JobResources
from tests.training.world import World, make_world

NPC = "npc-dialogue"


@pytest.fixture
def world(tmp_path: Path, tiny_base_model: Path) -> World:
    world = make_world(tmp_path, tiny_base_model)  # a working tree, not a commit
    return replace(world, settings=replace(world.settings, gateway_token="admin-secret"))


def _work(world: World) -> ModelWork:
    return ModelWork.of(
        repo=world.repo,
        desired=world.desired,
        settings=world.settings,
        use_case=world.use_case(NPC),
        identity=world.identity(NPC),
    )


def test_a_job_travels_as_plain_values_and_reads_the_desired_state_again(world: World) -> None:
    job = TrainJob(_work(world), base_version="1")

    shipped = pickle.dumps(job)
    arrived = pickle.loads(shipped)

    assert b"admin-secret" not in shipped  # the gateway's token stays on this machine
    assert arrived.work.loaded is None and job.work.loaded is world.desired
    assert arrived == job
    assert (arrived.name, arrived.key) == ("train npc-dialogue", world.identity(NPC).target_key)
    desired, use_case = arrived.work.open()
    assert desired is not world.desired
    assert use_case == world.use_case(NPC)
    assert desired.source.digest == world.desired.source.digest


def test_a_job_refuses_a_desired_state_edited_since_its_plan(world: World) -> None:
    arrived = pickle.loads(pickle.dumps(EvaluateJob(_work(world), "2", None, "1")))
    spec = world.repo / "desired_state/npc-dialogue.yaml"
    spec.write_text(spec.read_text() + "# edited after the plan\n")

    with pytest.raises(DesiredStateChangedError, match="not the one this job was planned from"):
        arrived.work.open()


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        (None, ResourceRequest(cpus=1.0, gpus=0.0, memory_bytes=None)),
        (
            JobResources.model_validate({"cpus": 4, "gpus": 0.5, "memoryGiB": 1.5}),
            ResourceRequest(cpus=4.0, gpus=0.5, memory_bytes=round(1.5 * GIB)),
        ),
    ],
)
def test_each_job_asks_for_the_use_cases_training_resources(
    world: World, asked: JobResources | None, expected: ResourceRequest
) -> None:
    use_case = world.use_case(NPC)
    training = use_case.spec.training.model_copy(update={"resources": asked})
    changed = use_case.model_copy(
        update={"spec": use_case.spec.model_copy(update={"training": training})}
    )
    assert resource_request(changed) == expected
