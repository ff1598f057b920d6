"""The plugin's settings, kept in QgsSettings under ``geoembed/``, and the backend environment they imply.

Empty or zero values mean "not set": the backend then uses its own defaults (the interpreter from
$GEOEMBED_PYTHON or backend.json, the store from $GEOEMBED_HOME or ~/.local/share/geoembed, every CPU, 64 GB).
"""

from dataclasses import dataclass

from qgis.core import QgsSettings

PREFIX = "geoembed/"
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class Settings:
    python: str = ""            # backend interpreter
    device: str = "auto"        # auto | cpu | cuda
    store: str = ""             # model store folder (GEOEMBED_HOME)
    threads: int = 0            # CPU threads of the backend (GEOEMBED_THREADS); 0: all
    max_output_gb: float = 0.0  # largest output, uncompressed (GEOEMBED_MAX_OUTPUT_GB); 0: the backend's 64
    warm_backend: bool = True   # keep a backend worker with loaded models between runs (GEOEMBED_WARM wins)

    @classmethod
    def load(cls):
        s = QgsSettings()
        device = s.value(PREFIX + "device", "auto", type=str)
        return cls(python=s.value(PREFIX + "python", "", type=str).strip(),
                   device=device if device in DEVICES else "auto",
                   store=s.value(PREFIX + "store", "", type=str).strip(),
                   threads=max(0, s.value(PREFIX + "threads", 0, type=int)),
                   max_output_gb=max(0.0, s.value(PREFIX + "max_output_gb", 0.0, type=float)),
                   warm_backend=s.value(PREFIX + "warm_backend", True, type=bool))

    def save(self):
        s = QgsSettings()
        for key, value in (("python", self.python.strip()), ("device", self.device), ("store", self.store.strip()),
                           ("threads", int(self.threads)), ("max_output_gb", float(self.max_output_gb)),
                           ("warm_backend", bool(self.warm_backend))):
            s.setValue(PREFIX + key, value)

    def environment(self):
        """Environment variables for the backend process that carry these settings (only those that are set)."""
        env = {}
        if self.store:
            env["GEOEMBED_HOME"] = self.store
        if self.threads > 0:
            env["GEOEMBED_THREADS"] = str(self.threads)
        if self.max_output_gb > 0:
            env["GEOEMBED_MAX_OUTPUT_GB"] = repr(float(self.max_output_gb))
        return env


def backend_environment():
    """Environment overrides for the backend from the saved settings, e.g. {"GEOEMBED_HOME": "/data/models"}."""
    return Settings.load().environment()
