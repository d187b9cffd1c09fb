"""``alignkit annotate``: serve the web app, manage users and projects, import, generate, export.

    alignkit annotate serve [--db URL] [--host 127.0.0.1] [--port 8000]
    alignkit annotate create-user --db URL --username NAME --role admin|annotator   (password: prompt or
        ALIGNKIT_ANNOTATE_PASSWORD)
    alignkit annotate import --db URL --project NAME FILE.jsonl [--kind rank|pairwise|rating --overlap N]
    alignkit annotate generate --db URL --project NAME --model M --prompts FILE --k 3
    alignkit annotate assign --db URL --project NAME --annotators a,b,c
    alignkit annotate export --db URL --project NAME --format pairs|ranking|unpaired --out FILE.jsonl
        [--aggregate majority|bradley-terry]
"""

from __future__ import annotations

import getpass
import os

from alignkit.errors import AlignkitError

DB_HELP = "SQLAlchemy URL of the database: sqlite:///FILE.db (default sqlite:///annotate.db) or postgresql://..."


def add_annotate_commands(commands) -> None:
    """Register ``annotate`` and its subcommands on the top-level subparsers ``commands``."""
    annotate = commands.add_parser("annotate", help="The human-feedback web app: serve, import, generate, export.")
    kinds = annotate.add_subparsers(dest="annotate_command", required=True, metavar="COMMAND")

    def sub(name, help_text):
        parser = kinds.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--db", default="sqlite:///annotate.db", help=DB_HELP)
        return parser

    serve = sub("serve", "Run the web app (migrates the database first).")
    serve.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    serve.add_argument("--port", type=int, default=8000, help="Port (default 8000).")
    serve.add_argument("--simulator-model", default="smollm2-135m", help="Model of the simulator page.")
    user = sub("create-user", "Add an admin or annotator account.")
    user.add_argument("--username", required=True)
    user.add_argument("--role", default="annotator", choices=["admin", "annotator"])
    for name, help_text in (("import", "Import items from JSON lines, all or nothing."),
                            ("generate", "Sample K responses per prompt from a model and import them.")):
        parser = sub(name, help_text)
        parser.add_argument("--project", required=True, help="Project name; created when missing.")
        parser.add_argument("--kind", default="rank", choices=["rank", "pairwise", "rating"],
                            help="Task kind of a new project (default rank).")
        parser.add_argument("--overlap", type=int, default=1, help="Annotators per item of a new project.")
        parser.add_argument("--guidelines", help="A text file with the guidelines of a new project.")
    annotate_import = kinds.choices["import"]
    annotate_import.add_argument("file", metavar="FILE.jsonl",
                                 help='One item a line: {"prompt": ..., "responses": [...], "gold": optional}.')
    generate = kinds.choices["generate"]
    generate.add_argument("--model", required=True, help="Policy: a run folder, model folder or model name.")
    generate.add_argument("--prompts", required=True, help="Data source whose rows have a 'prompt'.")
    generate.add_argument("--k", type=int, default=3, help="Responses per prompt (default 3).")
    generate.add_argument("--max-new-tokens", type=int, default=128)
    generate.add_argument("--temperature", type=float, default=0.8)
    generate.add_argument("--seed", type=int, default=0)
    assign = sub("assign", "Assign a project's items to annotators (gold items to all of them).")
    assign.add_argument("--project", required=True)
    assign.add_argument("--annotators", required=True, help="Comma-separated user names.")
    export = sub("export", "Write a project's labels as training data.")
    export.add_argument("--project", required=True)
    export.add_argument("--format", required=True, choices=["pairs", "ranking", "unpaired"])
    export.add_argument("--out", required=True, help="Output .jsonl file (written atomically).")
    export.add_argument("--aggregate", default="majority", choices=["majority", "bradley-terry"],
                        help="How the labels of several annotators of an item are combined.")


def run_annotate(args) -> None:
    """Run the ``annotate`` subcommand in ``args``; problems raise AlignkitError."""
    if args.annotate_command == "serve":
        import uvicorn

        from alignkit.annotate.app import create_app

        uvicorn.run(create_app(args.db, args.simulator_model), host=args.host, port=args.port)
        return
    from alignkit.annotate.db import open_database

    with open_database(args.db)() as session:
        COMMANDS[args.annotate_command](session, args)


def _project(session, args):
    from pathlib import Path

    from alignkit.annotate.importing import get_or_create_project

    guidelines = Path(args.guidelines).read_text(encoding="utf-8") if args.guidelines else ""
    return get_or_create_project(session, args.project, kind=args.kind, overlap=args.overlap, guidelines=guidelines)


def _existing_project(session, name: str):
    from sqlalchemy import select

    from alignkit.annotate.db import Project

    project = session.scalars(select(Project).where(Project.name == name)).first()
    if project is None:
        raise AlignkitError(f"no project called {name!r} in this database")
    return project


def _create_user(session, args) -> None:
    from alignkit.annotate.security import create_user

    password = os.environ.get("ALIGNKIT_ANNOTATE_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    create_user(session, args.username, password, args.role)
    print(f"created {args.role} {args.username}")


def _import(session, args) -> None:
    from alignkit.annotate.importing import import_items

    count = import_items(session, _project(session, args), args.file)
    print(f"imported {count} items into {args.project}")


def _generate(session, args) -> None:
    from alignkit.annotate.export import to_jsonl
    from alignkit.annotate.generate import read_prompts, sample_items
    from alignkit.annotate.importing import import_text
    from alignkit.config import GenerationConfig, load_config

    flags = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed}
    config = load_config(GenerationConfig, None, [f"{key}={value}" for key, value in flags.items()])
    rows = sample_items(args.model, read_prompts(args.prompts), args.k, config)
    count = import_text(session, _project(session, args), to_jsonl(rows), f"samples of {args.model}")
    print(f"generated and imported {count} items into {args.project}")


def _assign(session, args) -> None:
    from sqlalchemy import select

    from alignkit.annotate.db import User
    from alignkit.annotate.labels import assign_items

    names = [name.strip() for name in args.annotators.split(",") if name.strip()]
    users = session.scalars(select(User).where(User.username.in_(names))).all()
    missing = sorted(set(names) - {user.username for user in users})
    if missing:
        raise AlignkitError(f"--annotators: no user called {', '.join(missing)}")
    added = assign_items(session, _existing_project(session, args.project), sorted(users, key=lambda u: u.username))
    print(f"added {added} assignments")


def _export(session, args) -> None:
    from alignkit.annotate.export import export_project

    count = export_project(session, _existing_project(session, args.project), args.format, args.out, args.aggregate)
    print(f"wrote {count} {args.format} records to {args.out}")


COMMANDS = {"create-user": _create_user, "import": _import, "generate": _generate, "assign": _assign,
            "export": _export}
