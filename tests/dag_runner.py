"""Run the daily DAG once in a fresh interpreter and print each task's final state as JSON.

Used by tests/test_dag.py: Airflow reads its configuration (AIRFLOW_HOME, the DAGs folder)
when it is first imported, so every run gets its own process and environment.
Usage: python tests/dag_runner.py RUN_AFTER_ISO
"""

import datetime as dt
import json
import sys

from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[2] if len(sys.argv) > 2 else "dags")
dag = bag.dags["liveslate_daily"]
run = dag.test(logical_date=dt.datetime.fromisoformat(sys.argv[1]))
instances = run.get_task_instances()
states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in instances}
seconds = {ti.task_id: round(ti.duration, 1) for ti in instances if ti.duration is not None}
print("DAG_RUN_RESULT " + json.dumps({"state": str(getattr(run.state, "value", run.state)), "tasks": states,
                                     "seconds": seconds}))
