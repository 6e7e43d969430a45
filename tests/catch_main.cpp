// Catch2 main for the test programs (compiled once into catch_main).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
