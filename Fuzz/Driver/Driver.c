// The fuzzer's entry point. SwiftPM links an executable target with `main` defined as
// `<module>_main`, so libFuzzer's own `main` is not used; this one starts libFuzzer's driver the
// same way, with the harnesses' LLVMFuzzerTestOneInput. (If SwiftPM stops renaming `main`,
// libFuzzer's own is linked and this function is simply unused.)
#include "PGNodeFuzzDriver.h"

int pgnode_fuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
