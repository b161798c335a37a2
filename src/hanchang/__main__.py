from hanchang.cli import app

app(prog_name="hanchang")
