"""Where the Rasa project's files are: ``bot/`` and ``nlu_data/`` under the working directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# How `paybot train` runs Rasa: DIET's batches and step, TED in a second process.
TRAINING_CODE = (Path("rasa_plugins") / "train.py", Path("rasa_plugins") / "training_lanes.py")


@dataclass(frozen=True)
class Project:
    """The paybot project rooted at ``root`` (the directory paybot runs from).

    Paths are relative to ``root`` so that commands passed to Rasa stay short and readable;
    child processes run with ``root`` as their working directory.
    """

    root: Path

    @property
    def bot_dir(self) -> Path:
        """The Rasa domain, config, endpoints, credentials and dialog data."""
        return Path("bot")

    @property
    def domain(self) -> Path:
        """The Rasa domain file."""
        return self.bot_dir / "domain.yml"

    @property
    def config(self) -> Path:
        """The NLU pipeline and dialog policies."""
        return self.bot_dir / "config.yml"

    @property
    def stories_dir(self) -> Path:
        """Stories and rules."""
        return self.bot_dir / "data"

    @property
    def nlu_dir(self) -> Path:
        """NLU examples, synonyms and lookups (the conversation designers' files)."""
        return Path("nlu_data")

    @property
    def endpoints(self) -> Path:
        """Rasa's endpoints (the action server URL comes from the environment)."""
        return self.bot_dir / "endpoints.yml"

    @property
    def credentials(self) -> Path:
        """Rasa's input channels (REST only)."""
        return self.bot_dir / "credentials.yml"

    @property
    def training_inputs(self) -> tuple[Path, ...]:
        """Every file and directory ``rasa train`` reads, and the code that changes how it
        trains (:data:`TRAINING_CODE`); not the endpoints, credentials or
        the actions' wording, which a trained model does not depend on."""
        return (self.domain, self.config, self.stories_dir, self.nlu_dir, *TRAINING_CODE)

    def missing(self) -> list[Path]:
        """The required files and directories that do not exist under ``root``."""
        required = [self.domain, self.config, self.stories_dir, self.nlu_dir]
        return [path for path in required if not (self.root / path).exists()]


def find_project(root: Path | None = None) -> Project:
    """The project in ``root`` (default: the current directory)."""
    return Project(root=(root or Path.cwd()).resolve())
