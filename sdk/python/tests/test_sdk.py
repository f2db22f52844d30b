"""The Python SDK outside a component: run with the bindings componentize-py generates
for a contract (``componentize-py -d wit/since_vX.Y.Z -w volume-driver bindings DIR``) on
PYTHONPATH, beside sdk/python and plugins/py-example. The host calls are replaced by
fakes; tests/integration/python.rs runs this file against every contract folder."""

import subprocess
import unittest

from componentize_py_types import Err
from wit_world.imports import config as wit_config
from wit_world.imports import exec as wit_exec
from wit_world.imports import log as wit_log
from wit_world.imports import types

import ashlar_sdk
from ashlar_sdk import (
    CLEAR,
    CONTRACT_0_3,
    exec,
    health_report,
    model_update,
    retype_in_place,
    retype_migrate,
    value,
    volume_exports,
)

LOGGED = []
wit_log.log = lambda level, message: LOGGED.append((level, message))


def fake_run(program, args, timeout_ms):
    """Runs the program for real, as the host would after checking the grant."""
    if program == "denied":
        raise Err(wit_exec.ExecError_Denied("not granted"))
    p = subprocess.run([program, *args], capture_output=True)
    return wit_exec.Output(p.returncode, p.stdout, p.stderr)


wit_exec.run = fake_run


class ModelUpdates(unittest.TestCase):
    def test_a_location_is_set_and_the_rest_kept(self):
        u = model_update(location="nas:/srv", metadata={"b": "2", "a": "1"})
        self.assertEqual(u.metadata, [("a", "1"), ("b", "2")])
        if CONTRACT_0_3:
            self.assertEqual(u.provider_location, types.FieldUpdate_Set("nas:/srv"))
            self.assertIsInstance(u.provider_auth, types.FieldUpdate_Keep)
            self.assertEqual(u.metadata_removed, [])
            self.assertIsNone(u.pool)
        else:
            self.assertEqual(u.provider_location, "nas:/srv")
            self.assertIsNone(u.provider_auth)

    def test_clearing_needs_contract_0_3(self):
        if CONTRACT_0_3:
            u = model_update(auth=CLEAR, metadata_removed=["k"], pool="p2")
            self.assertIsInstance(u.provider_auth, types.FieldUpdate_Clear)
            self.assertEqual((u.metadata_removed, u.pool), (["k"], "p2"))
        else:
            with self.assertRaises(ValueError):
                model_update(auth=CLEAR)
            with self.assertRaises(ValueError):
                model_update(pool="p2")

    def test_retype_and_health_answers_fit_the_contract(self):
        if CONTRACT_0_3:
            self.assertIsNone(retype_migrate())
            self.assertIsInstance(retype_in_place(), types.ModelUpdate)
            self.assertIsInstance(health_report(True), types.HealthReport)
        else:
            self.assertIs(retype_migrate(), False)
            self.assertIs(retype_in_place(), True)
            self.assertEqual(health_report(False, "down").detail, "down")

    def test_values(self):
        self.assertEqual(value(True), types.Value_Flag(True))
        self.assertEqual(value(3), types.Value_Integer(3))
        self.assertEqual(value(2.5), types.Value_Number(2.5))
        self.assertEqual(value(["a"]), types.Value_Texts(["a"]))
        if CONTRACT_0_3:
            self.assertEqual(value([1, 2]), types.Value_Integers([1, 2]))
        else:
            self.assertEqual(value([1, 2]), types.Value_Texts(["1", "2"]))


class Exec(unittest.TestCase):
    def test_check_decodes_stdout_and_names_a_failing_program(self):
        self.assertEqual(exec.check("echo", ["hi"]), "hi\n")
        with self.assertRaises(Err) as e:
            exec.check("ls", ["/no/such/dir"])
        self.assertIsInstance(e.exception.value, types.DriverError_Internal)
        self.assertIn("`ls /no/such/dir` exited with status", e.exception.value.value)

    def test_a_refusal_is_backend_unavailable_naming_the_program(self):
        with self.assertRaises(Err) as e:
            exec.run("denied", [])
        self.assertIsInstance(e.exception.value, types.DriverError_BackendUnavailable)
        self.assertIn("exec of denied refused", e.exception.value.value)


class Exports(unittest.TestCase):
    def test_one_driver_per_instance_and_bugs_become_internal_errors(self):
        made = []

        class Driver(ashlar_sdk.VolumeDriver):
            def __init__(self):
                made.append(self)

            def create_volume(self, volume):
                return model_update(location=volume)

            def delete_volume(self, volume):
                raise KeyError(volume)

        core, extras, health = volume_exports(Driver)
        self.assertEqual(core().create_volume("v1"), model_update(location="v1"))
        with self.assertRaises(Err) as e:
            core().delete_volume("v1")
        self.assertEqual(e.exception.value, types.DriverError_Internal("KeyError: 'v1'"))
        self.assertIn("KeyError", LOGGED[-1][1])
        # Unwritten features answer not supported; the health probe answers healthy.
        with self.assertRaises(Err) as e:
            core().extend_volume("v1", 2)
        self.assertIsInstance(e.exception.value, types.DriverError_NotSupported)
        self.assertEqual(extras().retype("v1", "t", []), retype_migrate())
        self.assertTrue(health().health().healthy)
        self.assertEqual(len(made), 1, "one driver object per instance")
        self.assertEqual(
            hasattr(extras, "get_manageable_snapshots"), CONTRACT_0_3, "the contract's exports"
        )


class PyExample(unittest.TestCase):
    def test_settings_are_checked_naming_the_key(self):
        import app

        settings = {"share_path": "relative"}
        wit_config.get = settings.get
        wit_config.backend_name = lambda: "py"
        with self.assertRaises(Err) as e:
            app.Settings()
        self.assertIn("absolute", e.exception.value.value)
        settings.update(share_path="/srv/", volume_format="vmdk")
        with self.assertRaises(Err) as e:
            app.Settings()
        self.assertIn("vmdk", e.exception.value.value)
        settings.update(volume_format="qcow2")
        s = app.Settings()
        self.assertEqual(s.volume_path("abc"), "/srv/volume-abc")
        self.assertEqual(s.export, "localhost:/srv")
        with self.assertRaises(Err):
            s.volume_path("../etc")

    def test_df_output_is_parsed(self):
        import app

        df = "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/vda 1000 10 990 1% /\n"
        self.assertEqual(app.parse_df(df), (1000, 990))
        self.assertIsNone(app.parse_df("garbage"))


if __name__ == "__main__":
    unittest.main()
