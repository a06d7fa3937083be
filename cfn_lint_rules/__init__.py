"""cfn-lint rules shipped with the provider: load this folder with ``cfn-lint --append-rules cfn_lint_rules``."""
