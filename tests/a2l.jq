# a2l.jq - for tests/lib.sh addr2line_check: one line per distinct return
# address in the stacks of summary.json's site lists:
#   module TAB pc TAB "function|file:line" TAB ...   (its frames, innermost first)
[.top_sites[], .top_sites_by_peak[], .top_sites_by_allocations[], .leak_suspects[]]
| map(.frames
      | reduce .[] as $f ([];
          if length > 0 and .[length-1].fr[0].address == $f.address
          then .[length-1].fr += [$f]
          else . + [{m: $f.module, pc: $f.pc, fr: [$f]}] end))
| add // [] | unique_by([.m, .pc]) | .[]
| select(.m != null and .pc != null)
| [.m, .pc] + [.fr[] | "\(.function)|\(.file // "??"):\(.line)"] | join("\t")
