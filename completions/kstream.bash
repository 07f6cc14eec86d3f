# bash completion for kstream. Generated from the Typer app by `make completions`
# (tools/gencompletions.py): do not edit. Installation: completions/README.md
_kstream_completion() {
    local IFS=$'\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _KSTREAM_COMPLETE=complete_bash $1 ) )
    return 0
}

_kstream() {
    # Words as the user sees them: keep ':' and '=' inside words if bash-completion
    # is loaded (context names like arn:aws:eks:region:account:cluster/name).
    local COMP_WORDS=("${COMP_WORDS[@]}") COMP_CWORD=$COMP_CWORD cur
    if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
        local words cword
        _get_comp_words_by_ref -n =: -w words -i cword
        COMP_WORDS=("${words[@]}")
        COMP_CWORD=$cword
    fi
    cur=${COMP_WORDS[COMP_CWORD]}
    _kstream_completion "$1" 2>/dev/null
    if declare -F __ltrim_colon_completions >/dev/null 2>&1; then
        __ltrim_colon_completions "$cur"
    fi
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

complete -o default -F _kstream kstream
