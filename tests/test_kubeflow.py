"""The `kubeflow` compile target against the real kfp packages: golden files, a strict
protobuf parse of every example and valid spec plus a semantic validator, the kfp loader,
names, options, resources, gates, KServe manifests and hostile strings.  (The end-to-end
run of a compiled pipeline is tests/test_kubeflow_run.py.)

Refresh the golden files with `pytest --update-golden` and review the diff."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pipespec.compiler.lower import compile_file
from pipespec.targets import kubeflow
from pipespec.targets.base import UnsupportedError
from pipespec.targets.kubeflow import names, serving
from pipespec.targets.registry import TARGETS

from pipespec.cli import main

pytestmark = pytest.mark.kubeflow
kfp_components = pytest.importorskip("kfp.components")
import kfp_check  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("churn", "demand")
VALID = sorted(p.name for p in (ROOT / "specs" / "valid").glob("*.yaml"))


def compiled(path: Path, params=(), **options) -> kubeflow.Artifact:
    result = compile_file(str(path), list(params))
    assert result.ir is not None, result.diagnostics
    return kubeflow.compile(result.ir, options)


def example(name: str, **options) -> kubeflow.Artifact:
    return compiled(ROOT / "examples" / name / "pipeline.yaml", **options)


def spec_of(artifact: kubeflow.Artifact) -> dict:
    docs = list(yaml.safe_load_all(artifact.files["pipeline.yaml"]))
    return docs[0] if len(docs) == 1 else docs[1]["spec"]["pipelineSpec"]


# --- golden files, determinism -----------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_compiles_to_its_golden_files(name, golden):
    """pipeline.yaml and serving/; the IR file is the `ir` target's (checked below)."""
    files = {rel: data for rel, data in example(name).files.items() if not rel.endswith(".ir.json")}
    golden.check(f"kubeflow/{name}", files)


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_ir_file_is_the_canonical_ir_named_by_its_content(name):
    artifact = example(name)
    result = compile_file(str(ROOT / "examples" / name / "pipeline.yaml"), [])
    [ir_file] = [rel for rel in artifact.files if rel.endswith(".ir.json")]
    canonical = TARGETS["ir"].compile(result.ir, {}).files[f"{result.ir.pipeline}.ir.json"]
    assert artifact.files[ir_file] == canonical
    assert ir_file.startswith(result.ir.pipeline + ".")
    default = spec_of(artifact)["root"]["inputDefinitions"]["parameters"]["ir"].get("defaultValue")
    assert default is None if name == "demand" else default.endswith("/pipespec/" + ir_file)
    changed = compiled(ROOT / "examples" / name / "pipeline.yaml", ["seed=7"])
    assert [r for r in changed.files if r.endswith(".ir.json")] != [ir_file]


def test_output_is_deterministic_and_holds_no_path_version_or_time():
    first, second = example("churn"), example("churn")
    assert first.files == second.files
    text = first.files["pipeline.yaml"].decode()
    assert str(ROOT) not in text and "sdkVersion" not in text and "kfp-" not in text and "2026" not in text


# --- validity: every example and valid spec -----------------------------------------------


@pytest.mark.parametrize("name", VALID)
def test_every_valid_spec_compiles_to_a_valid_pipeline(name, tmp_path):
    artifact = compiled(ROOT / "specs" / "valid" / name)
    check_pipeline(artifact, tmp_path)


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("manifest", ["pipeline", "kubernetes"])
def test_every_example_compiles_to_a_valid_pipeline_in_both_forms(name, manifest, tmp_path):
    check_pipeline(example(name, manifest=manifest), tmp_path)


def check_pipeline(artifact: kubeflow.Artifact, tmp_path: Path) -> None:
    spec = spec_of(artifact)
    message = kfp_check.parse(spec)
    assert kfp_check.problems(spec) == []
    assert message.schema_version == "2.1.0"
    assert set(spec["root"]["dag"]["tasks"]) == {names.kfp_name(t["taskInfo"]["name"])
                                                 for t in spec["root"]["dag"]["tasks"].values()}
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(artifact.files["pipeline.yaml"])
    if len(list(yaml.safe_load_all(artifact.files["pipeline.yaml"]))) == 1:
        loaded = kfp_components.load_component_from_file(str(path))
        assert loaded.name == spec["pipelineInfo"]["name"]
        assert set(loaded.component_spec.inputs) == {"ir", "root", "store"}


def test_the_validator_catches_what_the_protobuf_parse_does_not():
    spec = spec_of(example("churn"))
    tasks = spec["root"]["dag"]["tasks"]
    tasks["train-churn-gbm"]["dependentTasks"] = ["rollout-churn-gbm"]
    tasks["evaluate-churn-gbm"]["inputs"]["parameters"]["bogus"] = {"runtimeValue": {"constant": "x"}}
    tasks["gate-model-quality"]["componentRef"]["name"] = "comp-missing"
    kfp_check.parse(spec)  # still a well-formed PipelineSpec
    found = "\n".join(kfp_check.problems(spec))
    assert "cycle:" in found and "input bogus not declared" in found and "unknown component comp-missing" in found
    assert "producer feature-churn-features missing or not a dependency" in found
    bad = spec_of(example("churn"))
    bad["deploymentSpec"]["executors"]["exec-source-customers-and-2-more"]["container"]["imagee"] = "x"
    with pytest.raises(Exception, match="imagee"):
        kfp_check.parse(bad)


# --- what the pipeline says ------------------------------------------------------------------


def test_one_task_per_node_components_named_after_their_tasks_and_the_step_command():
    spec = spec_of(example("churn"))
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(t["taskInfo"]["name"] for t in tasks.values()) == sorted(
        n.id for n in compile_file(str(ROOT / "examples/churn/pipeline.yaml"), []).ir.nodes)
    assert sorted(spec["components"]) == [
        "comp-evaluate-churn-gbm", "comp-feature-customer-plans-and-1-more", "comp-feature-usage-recent",
        "comp-gate-model-quality", "comp-gate-training-data", "comp-rollout-churn-gbm",
        "comp-source-customers-and-2-more", "comp-train-churn-gbm"]
    assert tasks["source-plans"]["componentRef"]["name"] == "comp-source-customers-and-2-more"
    assert tasks["feature-churn-features"]["componentRef"]["name"] == "comp-feature-customer-plans-and-1-more"
    container = spec["deploymentSpec"]["executors"]["exec-gate-training-data"]["container"]
    assert container["image"] == "ghcr.io/example/pipespec-runtime:0.1"
    assert container["command"] == ["pipespec", "step"]
    (ir_bytes,) = [data for name, data in example("churn").files.items() if name.endswith(".ir.json")]
    assert container["args"] == [
        "{{$.inputs.parameters['ir']}}", "--ir-sha256", hashlib.sha256(ir_bytes).hexdigest(),
        "--node", "{{$.inputs.parameters['node']}}",
        "--store", "{{$.inputs.parameters['store']}}", "--root", "{{$.inputs.parameters['root']}}",
        "--no-retries", "--result-file", "{{$.outputs.parameters['result'].output_file}}",
        "--digest-file", "{{$.outputs.parameters['digest'].output_file}}", "--passed-file", "{{$.outputs.parameters['passed'].output_file}}"]
    source = tasks["source-customers"]
    assert source["inputs"]["parameters"]["node"] == {"runtimeValue": {"constant": "source.customers"}}
    assert source["inputs"]["parameters"]["store"] == {"componentInputParameter": "store"}
    assert spec["defaultPipelineRoot"] == "gs://example-ml/pipelines/telecom-churn"


def test_components_grow_with_variety_not_with_the_graph(tmp_path):
    features = "".join(f"  f{i}: {{from: {'d' if i == 0 else f'f{i - 1}'}, columns: {{c{i}: x + {i}}}}}\n"
                       for i in range(150))
    spec = tmp_path / "chain.yaml"
    spec.write_text("pipespec: 1\npipeline: chain\nsources:\n  d: {format: csv, path: d.csv, schema: {x: int64}}\n"
                    "features:\n" + features)
    chain = spec_of(compiled(spec))
    assert len(chain["root"]["dag"]["tasks"]) == 151
    assert sorted(chain["components"]) == ["comp-feature-f0-and-149-more", "comp-source-d"]
    assert kfp_check.problems(chain) == []


def test_dependencies_come_from_the_ir_and_carry_upstream_digests():
    tasks = spec_of(example("churn"))["root"]["dag"]["tasks"]
    churn = tasks["feature-churn-features"]
    assert churn["dependentTasks"] == ["feature-customer-plans", "feature-usage-recent"]
    assert churn["inputs"]["parameters"]["left"] == {
        "taskOutputParameter": {"producerTask": "feature-customer-plans", "outputParameterKey": "digest"}}
    assert "dependentTasks" not in tasks["source-usage"]


def test_gates_output_a_boolean_and_the_rollout_requires_each_of_them():
    spec = spec_of(example("churn"))
    rollout = spec["root"]["dag"]["tasks"]["rollout-churn-gbm"]
    assert rollout["triggerPolicy"] == {"condition": "inputs.parameter_values['passed_0'] == true && "
                                                     "inputs.parameter_values['passed_1'] == true"}
    params = rollout["inputs"]["parameters"]
    assert {params[k]["taskOutputParameter"]["producerTask"] for k in ("passed_0", "passed_1")} == {
        "gate-training-data", "gate-model-quality"}
    assert all(params[k]["taskOutputParameter"]["outputParameterKey"] == "passed" for k in ("passed_0", "passed_1"))
    passed = spec["components"]["comp-gate-training-data"]["outputDefinitions"]["parameters"]["passed"]
    assert passed == {"parameterType": "BOOLEAN"}
    assert all("triggerPolicy" not in t for n, t in spec["root"]["dag"]["tasks"].items() if n != "rollout-churn-gbm")


def test_resources_and_retries():
    spec = spec_of(compiled(ROOT / "specs/valid/resources_retries.yaml"))
    tasks, comps, execs = spec["root"]["dag"]["tasks"], spec["components"], spec["deploymentSpec"]["executors"]

    def resources(task):
        return execs[comps[tasks[task]["componentRef"]["name"]]["executorLabel"]]["container"].get("resources")

    assert resources("feature-f1") == {"cpuLimit": 0.5, "resourceCpuLimit": "500m", "memoryLimit": 0.536870912,
                                       "resourceMemoryLimit": "512Mi"}
    assert resources("feature-f3") == {"memoryLimit": 2.0, "resourceMemoryLimit": "2G"}
    assert resources("feature-f5") == {"memoryLimit": 0.001048576, "resourceMemoryLimit": "1Mi"}
    assert resources("train-m") == {"cpuLimit": 8.0, "resourceCpuLimit": "8", "memoryLimit": 16.0,
                                    "resourceMemoryLimit": "16G", "accelerator": {
                                        "count": "1", "resourceCount": "1", "type": "nvidia.com/gpu",
                                        "resourceType": "nvidia.com/gpu"}}
    assert "accelerator" not in resources("feature-f2")  # gpus: 0
    assert tasks["train-m"]["retryPolicy"]["maxRetryCount"] == 5
    assert tasks["feature-f2"]["retryPolicy"]["maxRetryCount"] == 3
    assert "retryPolicy" not in tasks["feature-f1"]  # retries: 0


def test_caching_only_where_the_inputs_determine_the_output():
    tasks = spec_of(example("churn"))["root"]["dag"]["tasks"]
    cached = {t["taskInfo"]["name"] for t in tasks.values() if t["cachingOptions"]["enableCache"]}
    assert cached == {"feature.customer_plans", "feature.usage_recent", "feature.churn_features",
                      "train.churn_gbm", "evaluate.churn_gbm"}
    off = spec_of(example("churn", caching="false"))["root"]["dag"]["tasks"]
    assert not any(t["cachingOptions"]["enableCache"] for t in off.values())
    spec = spec_of(compiled(ROOT / "specs/valid/targets_all_options.yaml"))  # caching: false in the spec
    assert not any(t["cachingOptions"]["enableCache"] for t in spec["root"]["dag"]["tasks"].values())
    fingerprint = tasks["train-churn-gbm"]["inputs"]["parameters"]["fingerprint"]["runtimeValue"]["constant"]
    assert len(fingerprint) == 64  # a definition change changes KFP's cache key too


def test_pipeline_inputs_are_required_without_a_pipeline_root():
    spec = spec_of(compiled(ROOT / "specs/valid/targets_defaults.yaml"))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert sorted(params) == ["ir", "root", "store"]
    assert all("defaultValue" not in p and not p.get("isOptional") for p in params.values())
    assert "defaultPipelineRoot" not in spec


def test_the_kubernetes_form_mirrors_the_kfp_sdk():
    docs = list(yaml.safe_load_all(compiled(ROOT / "specs/valid/targets_all_options.yaml").files["pipeline.yaml"]))
    assert [d["kind"] for d in docs] == ["Pipeline", "PipelineVersion"]
    assert {d["apiVersion"] for d in docs} == {"pipelines.kubeflow.org/v2beta1"}
    assert docs[0]["metadata"] == {"name": "targets-all-options", "namespace": "kubeflow"}
    version = docs[1]
    assert version["metadata"]["namespace"] == "kubeflow"
    assert version["metadata"]["name"].startswith("targets-all-options-")
    assert kfp_check.NAME.match(version["metadata"]["name"])
    assert version["spec"]["pipelineName"] == "targets-all-options"
    executors = version["spec"]["pipelineSpec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"ghcr.io/acme/pipe:1.0"}
    plain = spec_of(compiled(ROOT / "specs/valid/targets_all_options.yaml", manifest="pipeline"))
    assert plain == version["spec"]["pipelineSpec"]


# --- names ------------------------------------------------------------------------------------


def test_kfp_names_sanitized_truncated_with_a_stable_hash():
    assert names.kfp_name("feature.churn_features") == "feature-churn-features"
    assert names.kfp_name("Train.__X__") == "train-x"
    long = "feature." + "a" * 200
    name = names.kfp_name(long)
    assert len(name) == 128 and kfp_check.NAME.match(name) and name == names.kfp_name(long)
    assert name != names.kfp_name("feature." + "a" * 199 + "b")
    assert names.dns_label("9lives") == "m-9lives" and names.DNS_LABEL.match(names.dns_label("x" * 80))


def test_component_names_are_unique_deterministic_and_kfp_names(tmp_path):
    """After the task that uses a component, or the first of those sharing it; a name already
    taken gets `-2`; long ones are cut with a hash; each is a fixed point of the kfp SDK's own
    sanitizer and a KFP name (at most 128)."""
    from kfp.dsl.utils import maybe_rename_for_k8s

    long = "f" * 150
    spec = tmp_path / "names.yaml"
    spec.write_text("pipespec: 1\npipeline: names\nsources:\n  d: {format: csv, path: d.csv, schema: {x: int64}}\n"
                    "features:\n  f: {from: d}\n  g: {from: d}\n"
                    "  f_and_1_more: {from: d, resources: {cpus: 2}}\n"
                    f"  {long}: {{from: d, resources: {{cpus: 3}}}}\n")
    built = spec_of(compiled(spec))
    refs = {t: v["componentRef"]["name"] for t, v in built["root"]["dag"]["tasks"].items()}
    assert refs["feature-f"] == refs["feature-g"] == "comp-feature-f-and-1-more"
    assert refs["feature-f-and-1-more"] == "comp-feature-f-and-1-more-2"  # taken by the shared one
    (long_task,) = [t for t, v in built["root"]["dag"]["tasks"].items() if v["taskInfo"]["name"] == f"feature.{long}"]
    assert len(refs[long_task]) == 128 and refs[long_task].startswith("comp-feature-fff")
    for label in built["components"]:
        assert maybe_rename_for_k8s(label) == label and kfp_check.NAME.match(label) and len(label) <= 128
    assert len(built["components"]) == len(set(refs.values())) == 4
    assert spec_of(compiled(spec)) == built  # deterministic
    assert kfp_check.problems(built) == []


def test_names_that_collide_after_sanitizing_are_one_error_naming_each(tmp_path):
    spec = tmp_path / "clash.yaml"
    spec.write_text("pipespec: 1\npipeline: clash\nsources:\n"
                    "  a_b: {format: csv, path: d.csv, schema: {x: int64}}\n"
                    "  A_b: {format: csv, path: d.csv, schema: {x: int64}}\n"
                    "  a__b: {format: csv, path: d.csv, schema: {x: int64}}\n")
    with pytest.raises(UnsupportedError) as err:
        compiled(spec)
    assert sorted(p[0].split(" ")[0] for p in err.value.problems) == ["source.a__b", "source.a_b"]
    assert all("'source-a-b' is also the name of source.A_b" in why for _, why in err.value.problems)
    assert "clash.yaml:4:3" in str(err.value) and "clash.yaml:6:3" in str(err.value)


def test_a_long_node_name_gets_a_valid_hashed_task_name(tmp_path):
    long = "s" + "x" * 150
    spec = tmp_path / "long.yaml"
    spec.write_text(f"pipespec: 1\npipeline: long\nsources:\n  {long}: {{format: csv, path: d.csv, schema: {{x: int64}}}}\n")
    tasks = spec_of(compiled(spec))["root"]["dag"]["tasks"]
    [name] = tasks
    assert len(name) <= 128 and kfp_check.NAME.match(name) and tasks[name]["taskInfo"]["name"] == f"source.{long}"


# --- options ----------------------------------------------------------------------------------


def test_options_override_the_spec_and_bad_ones_are_one_error():
    spec = spec_of(example("churn", image="registry.local/pipespec:dev", pipeline_root="s3://b/p/"))
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
        "registry.local/pipespec:dev"}
    assert spec["root"]["inputDefinitions"]["parameters"]["store"]["defaultValue"] == "s3://b/p/pipespec/store"
    with pytest.raises(UnsupportedError) as err:
        example("churn", imag="x", caching="maybe", namespace="Bad_NS", manifest="helm")
    text = str(err.value)
    assert "--option imag: unknown option" in text and "caching" in text and "Bad_NS" in text and "helm" in text


@pytest.mark.parametrize("hostile", ["x: y\n- z", "'\"{{$.inputs.parameters['ir']}}", "a\u2028b\x85c", "é\x00\t#"])
def test_hostile_strings_enter_the_yaml_only_as_data(hostile, tmp_path):
    artifact = example("churn", image=hostile, pipeline_root=hostile)
    spec = spec_of(artifact)
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {hostile}
    assert spec["defaultPipelineRoot"] == hostile
    kfp_check.parse(spec)
    described = tmp_path / "d.yaml"
    described.write_text(yaml.safe_dump({"pipespec": 1, "pipeline": "d", "description": hostile, "sources": {
        "s": {"format": "csv", "path": "d.csv", "schema": {"x": "int64"}}}}))
    assert spec_of(compiled(described))["pipelineInfo"]["description"] == hostile


# --- KServe ---------------------------------------------------------------------------------


def manifests(artifact) -> dict[str, dict]:
    return {rel: yaml.safe_load(data) for rel, data in artifact.files.items()
            if rel.startswith("serving/") and rel.endswith(".yaml")}


def test_a_canary_gives_one_manifest_per_step_and_a_rollback():
    artifact = example("churn")
    found = manifests(artifact)
    assert sorted(found) == ["serving/churn-gbm/01-canary-10.yaml", "serving/churn-gbm/02-canary-50.yaml",
                             "serving/churn-gbm/03-promote.yaml", "serving/churn-gbm/rollback.yaml"]
    percents = [m["spec"]["predictor"].get("canaryTrafficPercent") for _, m in sorted(found.items())]
    assert percents == [10, 50, None, 0]
    result = compile_file(str(ROOT / "examples/churn/pipeline.yaml"), [])
    node = result.ir.node("rollout.churn_gbm")
    for rel, manifest in found.items():
        stage = next(s for s in serving.canary(node, []) + [serving.Stage("rollback.yaml", "rollback: all traffic "
                     "back to the previous revision", 0)] if rel.endswith(s.file))
        assert manifest == serving.inference_service(result.ir, node, "churn-gbm", stage, kubeflow.options.Options())
        assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
        assert names.DNS_LABEL.match(manifest["metadata"]["name"])
        assert manifest["spec"]["predictor"]["model"]["storageUri"] == "${MODEL_URI}"
    readme = artifact.files["serving/README.md"].decode()
    assert readme.index("01-canary-10.yaml") < readme.index("02-canary-50.yaml") < readme.index("03-promote.yaml")
    assert "Hold 30m" in readme and "Hold 2h" in readme and "rollback.yaml" in readme


def test_what_kserve_cannot_express_is_a_warning_naming_the_spec_line():
    warnings = example("churn").warnings
    assert len(warnings) == 2 and all(w.startswith("pipeline.yaml:150:1: warning: kubeflow: rollout.churn_gbm:")
                                      for w in warnings)
    assert "no hold (30m, 2h)" in warnings[0] and "rollback_if (error_rate > 0.02" in warnings[1]
    shadow = compiled(ROOT / "specs/valid/rollout_shadow.yaml")
    assert any("cannot mirror requests (20%, 50.5%)" in w for w in shadow.warnings)
    assert "cannot mirror" in shadow.files["serving/README.md"].decode()
    [(rel, manifest)] = manifests(shadow).items()
    assert rel == "serving/m/01-shadow.yaml" and manifest["metadata"]["name"] == "m-shadow"
    assert "canaryTrafficPercent" not in manifest["spec"]["predictor"]
    fractional = compiled(ROOT / "specs/valid/rollout_list_canary_default.yaml")
    assert any("0.5% is not a whole percent" in w and "rounded up to 1%" in w for w in fractional.warnings)


def test_blue_green_stages_green_then_switches_and_direct_promotes_at_once():
    found = manifests(compiled(ROOT / "specs/valid/rollout_blue_green.yaml"))
    staged, switch = found["serving/m/01-stage-green.yaml"], found["serving/m/02-switch.yaml"]
    assert staged["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert staged["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] == "true"
    assert "canaryTrafficPercent" not in switch["spec"]["predictor"]
    assert "serving/m2/02-switch.yaml" in found
    direct = manifests(compiled(ROOT / "specs/valid/rollout_direct.yaml"))
    assert [m["spec"]["predictor"].get("canaryTrafficPercent") for _, m in sorted(direct.items())] == [None, 0]


def test_namespace_and_service_account_reach_the_inference_services():
    result = compile_file(str(ROOT / "examples/churn/pipeline.yaml"), [])
    artifact = kubeflow.compile(result.ir, {"namespace": "models", "service_account": "kserve-sa"})
    for manifest in manifests(artifact).values():
        assert manifest["metadata"]["namespace"] == "models"
        assert manifest["spec"]["predictor"]["serviceAccountName"] == "kserve-sa"


def test_no_rollout_no_serving_folder():
    assert not [r for r in compiled(ROOT / "specs/valid/feature_drop.yaml").files if r.startswith("serving/")]


# --- CLI --------------------------------------------------------------------------------------


def test_compile_target_kubeflow_through_the_cli(tmp_path):
    out = tmp_path / "out"
    done = CliRunner().invoke(main, ["compile", str(ROOT / "examples" / "churn" / "pipeline.yaml"),
                                     "--target", "kubeflow", "-o", str(out), "--option", "manifest=kubernetes"])
    assert done.exit_code == 0, done.output
    assert (out / "pipeline.yaml").is_file() and (out / "serving" / "README.md").is_file()
    assert [d["kind"] for d in yaml.safe_load_all((out / "pipeline.yaml").read_bytes())] == ["Pipeline", "PipelineVersion"]
    assert "pipeline.yaml:150:1: warning: kubeflow: rollout.churn_gbm: KServe has no hold" in done.stderr
    bad = CliRunner().invoke(main, ["compile", str(ROOT / "examples" / "churn" / "pipeline.yaml"),
                                    "--target", "kubeflow", "-o", str(out), "--option", "nope=1"])
    assert bad.exit_code == 1 and "unknown option" in bad.output


@pytest.mark.parametrize("name", EXAMPLES)
def test_fingerprints_read_back_from_the_ir_json_are_the_nodes_own(name):
    result = compile_file(str(ROOT / "examples" / name / "pipeline.yaml"), [])
    assert kubeflow.fingerprints(result.ir, result.ir.to_json().encode()) == {
        n.id: n.fingerprint() for n in result.ir.nodes}


def test_a_spec_without_an_image_compiles_with_a_warning(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text("pipespec: 1\npipeline: noimg\nsources:\n  d: {format: csv, path: d.csv, schema: {x: int64}}\n")
    artifact = kubeflow.compile(compile_file(str(spec), []).ir, {})
    assert any("no image given" in w for w in artifact.warnings)
    for image in ("registry.example/pipespec:1", "pipespec"):  # given, even if it is the placeholder's name
        artifact = kubeflow.compile(compile_file(str(spec), []).ir, {"image": image})
        assert not any("no image given" in w for w in artifact.warnings)
