// oneDNN's convolution passes as XLA FFI handlers: NHWC inputs, HWIO kernels, float32.
//
// XLA's CPU backend runs the convolutions of these networks at 30-140 GFLOP/s (its weight
// gradient at 2-14); oneDNN, the library PyTorch's CPU convolutions use, runs the same
// passes 2-10x faster on this machine. XLA offers no switch that routes convolutions to it
// (its --xla_cpu_use_onednn flag leaves them as they are), so this file binds the three
// passes through XLA's FFI: no library offers the binding. jaxcnn/models/onednn.py builds it
// and registers the handlers; jaxcnn/models/conv.py calls them.
//
// Activations stay in XLA's row-major NHWC buffers (oneDNN's nhwc); the kernel is reordered
// from HWIO into the blocked layout oneDNN picks for each pass, every call, as PyTorch does
// when training. Primitives are created once per shape and kept.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

// batch, height, width, in channels, kernel height, kernel width, out channels, two strides,
// padding top, bottom, left, right.
using Shape = std::vector<int64_t>;

struct Passes {
  memory::desc src, weights, dst;  // XLA's layouts: nhwc, hwio, nhwc
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data::primitive_desc input_gradient_pd;
  dnnl::convolution_backward_data input_gradient;
  dnnl::convolution_backward_weights::primitive_desc kernel_gradient_pd;
  dnnl::convolution_backward_weights kernel_gradient;
};

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// One convolution at a time: each already uses every core (OpenMP), and two at once from
// XLA's worker threads would put twice as many threads on the cores.
std::mutex& Lock() {
  static std::mutex* mutex = new std::mutex;
  return *mutex;
}

// Called with Lock() held.
Passes& PassesFor(const Shape& s) {
  static auto* cache = new std::map<Shape, std::unique_ptr<Passes>>;
  auto found = cache->find(s);
  if (found != cache->end()) return *found->second;
  const int64_t n = s[0], h = s[1], w = s[2], c = s[3], kh = s[4], kw = s[5], o = s[6];
  const int64_t sh = s[7], sw = s[8], top = s[9], bottom = s[10], left = s[11], right = s[12];
  const int64_t oh = (h + top + bottom - kh) / sh + 1, ow = (w + left + right - kw) / sw + 1;
  const auto f32 = memory::data_type::f32;
  auto p = std::make_unique<Passes>();
  p->src = memory::desc({n, c, h, w}, f32, memory::format_tag::nhwc);
  p->dst = memory::desc({n, o, oh, ow}, f32, memory::format_tag::nhwc);
  p->weights = memory::desc({o, c, kh, kw}, f32, memory::format_tag::hwio);
  const memory::desc any_weights({o, c, kh, kw}, f32, memory::format_tag::any);
  const memory::dims strides{sh, sw}, pad_l{top, left}, pad_r{bottom, right};
  const auto direct = dnnl::algorithm::convolution_direct;
  p->forward_pd = dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, direct, p->src, any_weights, p->dst,
      strides, pad_l, pad_r);
  p->forward = dnnl::convolution_forward(p->forward_pd);
  p->input_gradient_pd = dnnl::convolution_backward_data::primitive_desc(
      Engine(), direct, p->src, any_weights, p->dst, strides, pad_l, pad_r, p->forward_pd);
  p->input_gradient = dnnl::convolution_backward_data(p->input_gradient_pd);
  p->kernel_gradient_pd = dnnl::convolution_backward_weights::primitive_desc(
      Engine(), direct, p->src, any_weights, p->dst, strides, pad_l, pad_r, p->forward_pd);
  p->kernel_gradient = dnnl::convolution_backward_weights(p->kernel_gradient_pd);
  Passes& passes = *p;
  cache->emplace(s, std::move(p));
  return passes;
}

ffi::Error Check(ffi::Span<const int64_t> input, ffi::Span<const int64_t> kernel,
                 ffi::Span<const int64_t> strides, ffi::Span<const int64_t> padding,
                 Shape* shape) {
  if (input.size() != 4 || kernel.size() != 4 || strides.size() != 2 || padding.size() != 4 ||
      input[3] != kernel[2]) {
    return ffi::Error::InvalidArgument(
        "jaxcnn oneDNN convolution: expected an NHWC input, an HWIO kernel with the input's "
        "channels, two strides and four paddings");
  }
  *shape = {input[0], input[1], input[2], input[3], kernel[0], kernel[1], kernel[3],
            strides[0], strides[1], padding[0], padding[1], padding[2], padding[3]};
  return ffi::Error::Success();
}

// The kernel in the layout a pass wants: XLA's HWIO buffer itself, or a reordered copy.
memory KernelFor(const memory::desc& wanted, const memory::desc& hwio, float* data,
                 dnnl::stream& stream) {
  memory given(hwio, Engine(), data);
  if (wanted == hwio) return given;
  memory reordered(wanted, Engine());
  dnnl::reorder(given, reordered).execute(stream, given, reordered);
  return reordered;
}

template <typename Body>
ffi::Error Run(const Shape& shape, Body body) {
  try {
    std::lock_guard<std::mutex> hold(Lock());
    dnnl::stream stream(Engine());
    body(PassesFor(shape), stream);
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("jaxcnn oneDNN convolution: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                   ffi::ResultBuffer<ffi::F32> y, ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> padding) {
  Shape shape;
  if (auto e = Check(x.dimensions(), kernel.dimensions(), strides, padding, &shape); e.failure())
    return e;
  return Run(shape, [&](Passes& p, dnnl::stream& stream) {
    memory k = KernelFor(p.forward_pd.weights_desc(), p.weights, kernel.typed_data(), stream);
    p.forward.execute(stream, {{DNNL_ARG_SRC, memory(p.src, Engine(), x.typed_data())},
                               {DNNL_ARG_WEIGHTS, k},
                               {DNNL_ARG_DST, memory(p.dst, Engine(), y->typed_data())}});
  });
}

ffi::Error InputGradient(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> kernel,
                         ffi::ResultBuffer<ffi::F32> dx, ffi::Span<const int64_t> strides,
                         ffi::Span<const int64_t> padding) {
  Shape shape;
  if (auto e = Check(dx->dimensions(), kernel.dimensions(), strides, padding, &shape);
      e.failure())
    return e;
  return Run(shape, [&](Passes& p, dnnl::stream& stream) {
    memory k = KernelFor(p.input_gradient_pd.weights_desc(), p.weights, kernel.typed_data(),
                         stream);
    p.input_gradient.execute(
        stream, {{DNNL_ARG_DIFF_DST, memory(p.dst, Engine(), g.typed_data())},
                 {DNNL_ARG_WEIGHTS, k},
                 {DNNL_ARG_DIFF_SRC, memory(p.src, Engine(), dx->typed_data())}});
  });
}

ffi::Error KernelGradient(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                          ffi::ResultBuffer<ffi::F32> dkernel, ffi::Span<const int64_t> strides,
                          ffi::Span<const int64_t> padding) {
  Shape shape;
  if (auto e = Check(x.dimensions(), dkernel->dimensions(), strides, padding, &shape);
      e.failure())
    return e;
  return Run(shape, [&](Passes& p, dnnl::stream& stream) {
    memory hwio(p.weights, Engine(), dkernel->typed_data());
    const memory::desc& produced = p.kernel_gradient_pd.diff_weights_desc();
    memory out = produced == p.weights ? hwio : memory(produced, Engine());
    p.kernel_gradient.execute(stream,
                              {{DNNL_ARG_SRC, memory(p.src, Engine(), x.typed_data())},
                               {DNNL_ARG_DIFF_DST, memory(p.dst, Engine(), g.typed_data())},
                               {DNNL_ARG_DIFF_WEIGHTS, out}});
    if (produced != p.weights) dnnl::reorder(out, hwio).execute(stream, out, hwio);
  });
}

}  // namespace

#define JAXCNN_CONV_BINDING()                                                     \
  ffi::Ffi::Bind()                                                                \
      .Arg<ffi::Buffer<ffi::F32>>()                                               \
      .Arg<ffi::Buffer<ffi::F32>>()                                               \
      .Ret<ffi::Buffer<ffi::F32>>()                                               \
      .Attr<ffi::Span<const int64_t>>("strides")                                  \
      .Attr<ffi::Span<const int64_t>>("padding")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvForward, Forward, JAXCNN_CONV_BINDING());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvInputGradient, InputGradient,
                              JAXCNN_CONV_BINDING());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvKernelGradient, KernelGradient,
                              JAXCNN_CONV_BINDING());
