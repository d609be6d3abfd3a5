"""Training and evaluation jobs on a real local Ray: the same versions as in this process.

A session fixture starts Ray with one CPU (`conftest.py`); the jobs are the apply engine's
own (`reconciler.apply.model_jobs`), pickled to a Ray worker with plain values - the repository
path, the commit, the settings, the use case's name - and run there against the test's real
MLflow store. Ray start-up and a worker's first imports cost seconds: the tests are few.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import git
import pytest

from reconciler import lineage
from reconciler.apply.commands import build_context
from reconciler.apply.journal import OperationStatus
from reconciler.apply.model_builder import MlflowModelBuilder
from reconciler.apply.model_jobs import EvaluateJob, ModelWork, RegisterBaseJob, TrainJob
from reconciler.apply.plan_runner import apply_plan
from reconciler.errors import is_temporary
from reconciler.health import Health
from reconciler.jobs.interface import GIB, JobFailedError, JobResult, JobTimeoutError
from reconciler.jobs.local import LocalJobRunner
from reconciler.jobs.ray_runner import RayJobRunner
from reconciler.planning import make_plan
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.spec.loader import load_desired_state
from tests.training.world import World, make_world

NPC = "npc-dialogue"
SPEC = "desired_state/npc-dialogue.yaml"
TRAINING = "    retrain: {maxAttempts: 2}\n"
LONG_TRAINING = "    hyperparameters: {epochs: 100, earlyStoppingPatience: 100}\n"


def _world(root: Path, tiny_base_model: Path, training_extra: str, *, attempts: int = 2) -> World:
    """The shipped desired state, committed, with npc-dialogue's training spec extended."""
    world = make_world(root, tiny_base_model)
    spec = world.repo / SPEC
    text = spec.read_text()
    if "hyperparameters" in training_extra:
        text = "\n".join(line for line in text.split("\n") if "hyperparameters:" not in line)
    retrain = f"    retrain: {{maxAttempts: {attempts}}}\n"
    spec.write_text(text.replace(TRAINING, retrain + training_extra))
    (world.repo / ".gitignore").write_text("models/\n")  # build outputs, as in the project
    repo = git.Repo.init(world.repo)
    repo.git.add(A=True)
    repo.index.commit("desired state")
    desired = load_desired_state(world.repo, "HEAD").state
    assert desired is not None
    return replace(world, desired=desired)


def _work(world: World) -> ModelWork:
    return ModelWork.of(
        repo=world.repo,
        desired=world.desired,
        settings=world.settings,
        use_case=world.use_case(NPC),
        identity=world.identity(NPC),
    )


def _versions(world: World) -> list[Any]:
    return world.client().search_model_versions(f"name = '{NPC}'")


def _evaluation_runs(world: World, candidate: str) -> int:
    client = world.client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = f"tags.`reconciler.candidate_version` = '{candidate}'"
    return len(client.search_runs(experiments, filter_string=found))


def _training_runs(world: World) -> int:
    client = world.client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string="tags.`reconciler.role` = 'trained'")
    return len(runs)


@dataclass(frozen=True)
class TrainedOnRay:
    world: World
    base: str
    trained: JobResult[str]
    made: tuple[int, int]  # versions, training runs


@pytest.fixture(scope="module")
def trained_on_ray(
    local_ray: Any, tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path
) -> TrainedOnRay:
    """npc-dialogue's base registered here, its LoRA training run once on Ray for the module.

    One retrain attempt, so its evaluation judges exactly the version trained here."""
    world = _world(
        tmp_path_factory.mktemp("ray-training"),
        tiny_base_model,
        "    resources: {cpus: 1, memoryGiB: 0.5}\n",
        attempts=1,
    )
    base = _local_builder(world).register_base(world.use_case(NPC), world.identity(NPC))
    work = _work(world)
    assert work.ref == world.desired.source.commit  # the worker reads the planned commit
    trained = RayJobRunner(address=None, timeout_seconds=600).run(TrainJob(work, base))
    return TrainedOnRay(world, base, trained, (len(_versions(world)), _training_runs(world)))


def _local_builder(world: World) -> MlflowModelBuilder:
    return MlflowModelBuilder(
        repo=world.repo,
        desired=world.desired,
        settings=world.settings,
        registry=MlflowRegistry(world.settings.tracking_uri),
    )


def test_lora_training_on_ray_makes_the_version_the_local_runner_finds(
    local_ray: Any, trained_on_ray: TrainedOnRay
) -> None:
    world, base, trained = trained_on_ray.world, trained_on_ray.base, trained_on_ray.trained

    # Trained on a Ray worker with exactly what the use case asked for.
    assert trained.placement.runner == "ray"
    assert trained.placement.node == local_ray.get_runtime_context().get_node_id()
    assert dict(trained.placement.resources) == {"CPU": 1.0, "memory": 0.5 * GIB}
    version = world.client().get_model_version(NPC, trained.value)
    assert version.tags[lineage.KEY] == world.identity(NPC).target_key
    assert version.tags[lineage.ROLE] == "trained"
    assert version.status == "READY"
    assert trained_on_ray.made == (2, 1)

    # The local runner, asked for the same training, finds the version Ray made ...
    local = _local_builder(world)
    assert local.train(world.use_case(NPC), world.identity(NPC), base) == trained.value
    # ... and a job resubmitted after a crash finds it too: nothing is trained twice.
    again = RayJobRunner(address=None, timeout_seconds=600).run(TrainJob(_work(world), base))
    assert again.value == trained.value
    assert (len(_versions(world)), _training_runs(world)) == trained_on_ray.made


def test_evaluation_on_ray_gives_the_verdict_an_evaluation_here_gives(
    trained_on_ray: TrainedOnRay,
) -> None:
    world, base, candidate = trained_on_ray.world, trained_on_ray.base, trained_on_ray.trained.value
    use_case, identity = world.use_case(NPC), world.identity(NPC)

    judged = RayJobRunner(address=None, timeout_seconds=600).run(
        EvaluateJob(_work(world), candidate, None, base)
    )

    # Judged on the worker, recorded in MLflow from there, nothing trained again.
    assert judged.placement.runner == "ray"
    outcome = judged.value
    assert outcome.candidate == candidate
    tags = world.client().get_model_version(NPC, candidate).tags
    assert tags[lineage.EVALUATION_VERDICT] == (
        lineage.EvaluationVerdict.PASSED.value
        if outcome.passed
        else lineage.EvaluationVerdict.FAILED.value
    )
    assert tags[lineage.EVALUATION_DIGEST] == identity.digest
    assert tags[lineage.EVALUATION_REASON] == outcome.reason
    assert _evaluation_runs(world, candidate) == 1
    assert (len(_versions(world)), _training_runs(world)) == trained_on_ray.made

    # Asked again here, the builder finds that verdict instead of measuring once more ...
    assert _local_builder(world).evaluate(use_case, identity, candidate, None) == outcome
    assert _evaluation_runs(world, candidate) == 1
    # ... and the same evaluation measured again in this process reaches the same verdict.
    from reconciler.evaluation.gate import evaluate

    here = evaluate(
        use_case,
        identity,
        world.desired,
        repo=world.repo,
        settings=world.settings,
        candidate_version=candidate,
        champion_version=None,
        logs=_work(world).logs(),
    )
    assert (here.passed, here.reason) == (outcome.passed, outcome.reason)
    assert _evaluation_runs(world, candidate) == 2


def test_a_job_no_node_can_hold_is_a_recorded_failure_naming_the_cause(
    local_ray: Any, tmp_path: Path, tiny_base_model: Path
) -> None:
    world = _world(tmp_path, tiny_base_model, "    resources: {cpus: 1, gpus: 2}\n")
    settings = replace(world.settings, jobs="ray", job_timeout="10m")
    planned = make_plan(world.repo, "HEAD", settings, only=[NPC], local_traffic=True)
    assert planned.plan is not None and planned.desired is not None
    context = build_context(world.repo, planned.desired, settings)

    result = apply_plan(planned.plan, context)

    (outcome,) = result.outcomes
    assert outcome.health is Health.DEGRADED
    assert outcome.retryable  # a node with GPUs may join: the controller tries again
    operation = context.journal.last_operation(NPC)
    assert operation is not None
    assert (operation.action, operation.status) == ("register", OperationStatus.FAILED)
    # Refused before it was submitted, not left pending on Ray until the deadline.
    assert operation.message.startswith(
        "no node of local Ray can run register-base npc-dialogue: it asks for 1 CPU, 2 GPU"
    )
    assert "the nodes have 1 CPU, 0 GPU" in operation.message
    assert _versions(world) == []


def test_a_job_that_fails_on_its_worker_fails_here_with_its_cause(
    local_ray: Any, tmp_path: Path, tiny_base_model: Path
) -> None:
    world = make_world(tmp_path, tiny_base_model)  # a working tree, not a commit
    work = _work(world)
    assert work.ref is None
    # The working tree changes after the plan: the worker must not register from it.
    dataset = world.repo / "desired_state/datasets/npc_dialogue/initial.jsonl"
    dataset.write_text(dataset.read_text() + '{"prompt": "Hi", "response": "Hello"}\n')

    with pytest.raises(JobFailedError) as raised:
        RayJobRunner(address=None, timeout_seconds=600).run(RegisterBaseJob(work))

    assert str(raised.value) == (
        f"register-base npc-dialogue failed on local Ray: the desired state in the working tree "
        f"{world.repo} is not the one this job was planned from (it changed since); commit it "
        "and plan again"
    )
    assert not is_temporary(raised.value)
    assert _versions(world) == []


def test_a_job_past_its_deadline_is_cancelled_and_gives_its_cpu_back(
    local_ray: Any, tmp_path: Path, tiny_base_model: Path
) -> None:
    # A training of minutes (100 epochs, no early stop) against a deadline of seconds.
    world = _world(tmp_path, tiny_base_model, LONG_TRAINING)
    base = LocalJobRunner().run(RegisterBaseJob(_work(world))).value

    with pytest.raises(JobTimeoutError) as raised:
        RayJobRunner(address=None, timeout_seconds=3).run(TrainJob(_work(world), base))

    assert str(raised.value).startswith(
        "train npc-dialogue did not finish within 3 s on local Ray and was cancelled"
    )
    assert is_temporary(raised.value)
    deadline = time.monotonic() + 60
    while local_ray.available_resources().get("CPU", 0.0) < 1.0:
        assert time.monotonic() < deadline, "the cancelled job still holds its CPU"
        time.sleep(0.1)
    assert [str(v.version) for v in _versions(world)] == [base]
