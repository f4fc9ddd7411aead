"""The python flavour's task callable refuses a damaged IR with one line, not a traceback."""

import pytest

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize("text", ["[]", '{"schema_version": 1, "nodes": [5]}', "not json"])
def test_a_damaged_ir_fails_the_task_without_retries(tmp_path, text):
    from airflow.sdk.exceptions import AirflowFailException

    from pipespec.targets.airflow import task

    path = tmp_path / "p.ir.json"
    path.write_text(text)
    with pytest.raises(AirflowFailException, match="is not a pipespec IR file"):
        task._graph(str(path))
