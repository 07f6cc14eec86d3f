# fish completion for kstream. Generated from the Typer app by `make completions`
# (tools/gencompletions.py): do not edit. Installation: completions/README.md
complete --command kstream --no-files --arguments "(env _KSTREAM_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) kstream)" --condition "env _KSTREAM_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=is-args _TYPER_COMPLETE_ARGS=(commandline -cp) kstream"
