# Sourced by the benchmark scripts: how they name the CPU.
# cpu_model: the model name with its family and model numbers ("AMD EPYC" alone is a Zen 3,
# family 25 model 1, or a Zen 4, model 17).
cpuinfo_field() { grep -m1 "^$1\s*:" /proc/cpuinfo | cut -d: -f2- | xargs; }
cpu_model() {
  echo "$(cpuinfo_field 'model name') (family $(cpuinfo_field 'cpu family'), model $(cpuinfo_field model))"
}
