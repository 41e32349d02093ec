# GoogleTest from Debian's libgtest-dev, registered with ctest.
enable_testing()
find_package(GTest REQUIRED)
include(GoogleTest)
