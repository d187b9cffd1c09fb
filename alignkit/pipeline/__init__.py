"""``alignkit pipeline``: SFT → reward model → PPO, DPO beside PPO, then the evaluation, in one command.

    cli.py         the subcommand
    stages.py      the stages: what each reads, how it runs, when its folder is finished
    evaluation.py  the last stage: the reward model's accuracy and the policies' win rates over SFT
    run.py         the plan (skip, resume or run each stage), the run and the summary table
"""
