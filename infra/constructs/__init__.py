"""One construct per capability; the stacks in infra/stacks compose them."""
