# rlctl.bash - bash completion for rlctl: commands, tiers subcommands, each
# command's flags, the values of --sort and --format, tier names (asked of
# `rlctl tiers list --names`, on the database of the --db given, if any,
# with --shared-group if given)
# and file names where a command takes a file.
#
# Needs nothing but bash: it reads COMP_WORDS itself rather than relying on
# the bash-completion package. Installed as
# share/bash-completion/completions/rlctl, where bash-completion finds it on
# first use; otherwise `source tool/rlctl.bash`.

_rlctl_tiers() {
    # Errors (no database yet, a bad --db) just mean no names to offer.
    # $2 is --shared-group when it was typed.
    if [[ -n $1 ]]; then
        command rlctl $2 --db "$1" tiers list --names 2>/dev/null
    else
        command rlctl $2 tiers list --names 2>/dev/null
    fi
}

_rlctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="stats keys inspect watch allow reset prune penalize leases assign unassign which tiers doctor export import version"
    local db="" sg="" cmd="" sub="" npos=0 i w
    COMPREPLY=()

    # What was typed before the word being completed: --db's value, the
    # command, the tiers subcommand, and how many arguments follow them.
    # (bash splits "--db=PATH" into "--db" "=" "PATH".)
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ -z $cmd && $w == --db ]]; then
            if [[ ${COMP_WORDS[i + 1]} == = ]]; then
                ((i++))
            fi
            if ((i + 1 < COMP_CWORD)); then
                db=${COMP_WORDS[i + 1]}
            fi
            ((i++))
        elif [[ -z $cmd && $w == --shared-group ]]; then
            sg=$w
        elif [[ $w == -* || $w == = || $w == : || ${COMP_WORDS[i - 1]} == : ]]; then
            : # bash splits keys at ':' too: "ip:1" arrives as "ip" ":" "1"
        elif [[ -z $cmd ]]; then
            cmd=$w
        elif [[ $cmd == tiers && -z $sub ]]; then
            sub=$w
        else
            ((npos++))
        fi
    done
    [[ $cur == = ]] && cur=""
    [[ $prev == = ]] && prev=${COMP_WORDS[COMP_CWORD - 2]}

    # A value after an option that takes one.
    case $prev in
    --db)
        if [[ -z $cmd ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return
        fi
        ;;
    --tier)
        COMPREPLY=($(compgen -W "$(_rlctl_tiers "$db" "$sg")" -- "$cur"))
        return
        ;;
    --sort)
        COMPREPLY=($(compgen -W "admitted refused last-seen" -- "$cur"))
        return
        ;;
    --format)
        COMPREPLY=($(compgen -W "table json prometheus" -- "$cur"))
        return
        ;;
    --top | --match | --cost | --wait | --idle | --interval | --resource | --limit | --after)
        return
        ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--db --shared-group --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local flags=""
    case $cmd in
    stats) flags="--top --sort --match --tier --json --format" ;;
    keys) flags="--match --tier --limited --all-limits --limit --after --json" ;;
    inspect | which) flags="--json" ;;
    watch) flags="--interval --top --match" ;;
    allow) flags="--cost --wait --quiet --json" ;;
    reset) flags="--match --tier --all --yes --dry-run" ;;
    prune) flags="--idle --dry-run" ;;
    penalize) flags="--resource" ;;
    leases) flags="--json" ;;
    doctor) flags="--json" ;;
    import) flags="--yes" ;;
    tiers)
        case $sub in
        "")
            COMPREPLY=($(compgen -W "list show validate load" -- "$cur"))
            return
            ;;
        list) flags="--json --names" ;;
        show | validate) flags="--json" ;;
        esac
        ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
        return
    fi

    # Positional arguments: tiers and files; keys are the user's to type.
    case $cmd/$sub in
    assign/)
        if ((npos == 1)); then
            COMPREPLY=($(compgen -W "$(_rlctl_tiers "$db" "$sg")" -- "$cur"))
        fi
        ;;
    tiers/show)
        COMPREPLY=($(compgen -W "$(_rlctl_tiers "$db" "$sg")" -- "$cur"))
        ;;
    tiers/validate | tiers/load | export/ | import/)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        ;;
    esac
}

complete -F _rlctl rlctl
