// The compiled parts of Asio and Beast, built once for the whole project (see the top-level
// CMakeLists.txt: BOOST_ASIO_SEPARATE_COMPILATION, BOOST_BEAST_SEPARATE_COMPILATION).
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
