"""KServe InferenceService manifests for each rollout, one file per step, and a README of
the promotion / rollback sequence.

KServe (serverless mode) moves traffic between the previous and the latest revision of one
InferenceService with `canaryTrafficPercent`; that is what each strategy maps onto (table
`STRATEGIES`).  What KServe cannot express — holds, `rollback_if`, mirroring a share of
requests, fractional percents — is returned as a warning naming the spec line and written
into the README, never dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipespec.compiler.ir import Graph, Rollout
from pipespec.compiler.ir import format_duration as _duration

from .names import dns_label
from .options import Options

API_VERSION = "serving.kserve.io/v1beta1"
MODEL_URI = "${MODEL_URI}"
"""The candidate's model artifact is known only after the pipeline ran: set at apply time
(`envsubst`), never guessed."""
ROLLBACK = "rollback.yaml"


@dataclass(frozen=True)
class Stage:
    """One manifest of a rollout: what applying it does to the traffic."""

    file: str
    action: str
    canary: int | None  # canaryTrafficPercent; None: all traffic to the latest revision
    hold: int | None = None
    suffix: str = ""  # a separate InferenceService (shadow)
    tag_routing: bool = False


def canary(node: Rollout, gaps: list[str]) -> list[Stage]:
    stages = []
    for k, step in enumerate(node.steps, 1):
        if step.traffic >= 100:
            stages.append(Stage(f"{k:02d}-promote.yaml", "promote: all traffic to the new model", None,
                                step.hold_seconds))
            continue
        percent = math.ceil(step.traffic)
        if percent != step.traffic:
            gaps.append(f"step {k} traffic {step.traffic:g}% is not a whole percent "
                        f"(KServe's canaryTrafficPercent): rounded up to {percent}%")
        stages.append(Stage(f"{k:02d}-canary-{percent}.yaml", f"canary: {percent}% of traffic to the new model",
                            percent, step.hold_seconds))
    return stages


def blue_green(node: Rollout, gaps: list[str]) -> list[Stage]:
    hold = node.steps[0].hold_seconds if node.steps else None
    return [Stage("01-stage-green.yaml", "stage green: the new revision is deployed with no traffic, "
                  "reachable through its `latest` tag URL", 0, hold, tag_routing=True),
            Stage("02-switch.yaml", "switch: all traffic to green at once", None, tag_routing=True)]


def shadow(node: Rollout, gaps: list[str]) -> list[Stage]:
    shares = ", ".join(f"{s.traffic:g}%" for s in node.steps) or "100%"
    gaps.append(f"KServe cannot mirror requests ({shares}): the candidate is deployed as its own "
                "InferenceService that serves no production traffic; mirror requests to it in the "
                "service mesh (e.g. Istio mirrorPercentage); it is never promoted")
    hold = sum(s.hold_seconds or 0 for s in node.steps) or None
    return [Stage("01-shadow.yaml", "shadow: the candidate as a separate InferenceService, "
                  "receiving mirrored requests only", None, hold, suffix="-shadow")]


def direct(node: Rollout, gaps: list[str]) -> list[Stage]:
    return [Stage("01-promote.yaml", "promote: all traffic to the new model at once", None)]


STRATEGIES = {"canary": canary, "blue_green": blue_green, "shadow": shadow, "direct": direct}
HAS_ROLLBACK_MANIFEST = frozenset({"canary", "blue_green", "direct"})


def build(ir: Graph, opts: Options) -> tuple[dict[str, dict], str, list[str], list[tuple[str, str]]]:
    """(relative path -> manifest, README text, warnings, problems) for every rollout."""
    rollouts = [n for n in ir.nodes if n.kind == "Rollout"]
    manifests: dict[str, dict] = {}
    sections, warnings, problems, owners = [], [], [], {}
    for node in rollouts:
        name = dns_label(node.model)
        if name in owners:
            problems.append((node.id, f"its InferenceService name {name!r} is also {owners[name]}'s"))
            continue
        owners[name] = node.id
        gaps: list[str] = []
        stages = STRATEGIES[node.strategy](node, gaps)
        gaps += _not_expressed(node, stages)
        for stage in stages:
            manifests[f"serving/{name}/{stage.file}"] = inference_service(ir, node, name, stage, opts)
        if node.strategy in HAS_ROLLBACK_MANIFEST:
            rollback = Stage(ROLLBACK, "rollback: all traffic back to the previous revision", 0)
            manifests[f"serving/{name}/{ROLLBACK}"] = inference_service(ir, node, name, rollback, opts)
        warnings += [f"{where(ir, node)}: warning: kubeflow: {node.id}: {gap}" for gap in gaps]
        sections.append(section(node, name, stages, gaps))
    readme = readme_text(ir, sections) if rollouts else ""
    return manifests, readme, warnings, problems


def _not_expressed(node: Rollout, stages: list[Stage]) -> list[str]:
    gaps = []
    holds = [_duration(s.hold) for s in stages if s.hold]
    if holds:
        gaps.append(f"KServe has no hold ({', '.join(holds)}): wait between applying the manifests "
                    "(serving/README.md)")
    if node.rollback_if is not None:
        gaps.append(f"KServe does not evaluate rollback_if ({node.rollback_if.text}): check it on the serving "
                    "metrics and apply the rollback when it holds (serving/README.md)")
    return gaps


def inference_service(ir: Graph, node: Rollout, name: str, stage: Stage, opts: Options) -> dict:
    annotations = {"serving.kserve.io/deploymentMode": "Serverless", "pipespec/pipeline": ir.pipeline,
                   "pipespec/model": node.model, "pipespec/stage": stage.action}
    if stage.tag_routing:
        annotations["serving.kserve.io/enable-tag-routing"] = "true"
    predictor: dict = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": MODEL_URI}}
    if stage.canary is not None:
        predictor["canaryTrafficPercent"] = stage.canary
    if opts.service_account:
        predictor["serviceAccountName"] = opts.service_account
    metadata = {"name": name + stage.suffix, "annotations": annotations}
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": metadata,
            "spec": {"predictor": predictor}}


def where(ir: Graph, node) -> str:
    span = node.span
    if span is None:
        return ir.source_file or ir.pipeline
    return f"{span.file}:{span.line}:{span.col}"


def _code(text: str) -> str:
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


def section(node: Rollout, name: str, stages: list[Stage], gaps: list[str]) -> str:
    lines = [f"## {_code(node.model)}: {node.strategy} (InferenceService {_code(name)})", ""]
    for k, stage in enumerate(stages, 1):
        lines.append(f"{k}. `kubectl apply -f serving/{name}/{stage.file}` — {stage.action}.")
        if stage.hold:
            lines.append(f"   Hold {_duration(stage.hold)} before the next step.")
        if node.rollback_if is not None:
            lines.append(f"   If {_code(node.rollback_if.text)} holds on the serving metrics, roll back.")
    if node.strategy in HAS_ROLLBACK_MANIFEST:
        lines += ["", f"**Rollback:** `kubectl apply -f serving/{name}/{ROLLBACK}` "
                      "(canaryTrafficPercent 0: all traffic to the previous ready revision)."]
    else:
        lines += ["", f"**Rollback:** `kubectl delete -f serving/{name}/{stages[0].file}`."]
    if gaps:
        lines += ["", "Not expressed by these manifests:", ""] + [f"- {g}" for g in gaps]
    return "\n".join(lines)


def readme_text(ir: Graph, sections: list[str]) -> str:
    head = [
        f"# Serving {_code(ir.pipeline)} with KServe", "",
        "Generated by `pipespec compile --target kubeflow`. Apply the manifests of a rollout in order, "
        "only after the pipeline run's gates passed and its rollout task succeeded. Every manifest "
        f"leaves `storageUri` as `{MODEL_URI}`: set it to the candidate model's artifact (named by its "
        "registry record in the store), e.g. `MODEL_URI=gs://... envsubst < FILE | kubectl apply -f -`. "
        "The artifact is a skops file: serve it with a ServingRuntime for the `sklearn` format that "
        "loads skops. `canaryTrafficPercent` needs KServe's Serverless mode (set on every manifest).",
    ]
    return "\n\n".join(["\n".join(head)] + sections) + "\n"
