// The program every layer_check_<layer> links (src/CMakeLists.txt): it does nothing; linking
// the layer's whole archive against the layers below it is the check.
int main() { return 0; }
