// Patch embedding (docs/design.md §3.10): images cut into p × p patches (a permutation of the input,
// kernels/tokens.cu), a token-wise Linear (p·p·C → D, with bias) and fixed 2-D sin-cos positions: the
// strided linear map of the simple ViT.
#include "cflow/runtime/error.h"
#include "host/engine/layer_linear_map.h"
#include "kernels/tokens.h"

namespace cflow {
namespace {

template <class T>
class Patchify final : public LinearMapLayer<T> {
 public:
  explicit Patchify(PatchGeometry g) : g_(g) {}

  TensorShape output_shape() const override { return {g_.size(), 1, 1}; }

 private:
  void apply(const JetPass<T>& p, index_t columns, const T* x, T* y) const override {
    CFLOW_DISPATCH(p.dev, patchify<T>, p.dev, g_, columns, false, x, y);
  }
  // A permutation: its adjoint is its inverse.
  void adjoint(const JetPass<T>& p, index_t columns, const T* y, T* x) const override {
    CFLOW_DISPATCH(p.dev, patchify<T>, p.dev, g_, columns, true, y, x);
  }
  index_t input_size() const override { return g_.size(); }

  PatchGeometry g_;
};

}  // namespace

template <class T>
LayerStack<T> make_patch_embedding(TensorShape image, index_t patch, index_t features, index_t offset) {
  CFLOW_REQUIRE(patch >= 1 && image.height % patch == 0 && image.width % patch == 0,
                "patch embedding: the patch size (--patch) must divide the image height and width (" +
                    std::to_string(image.height) + "×" + std::to_string(image.width) + "); choose a divisor");
  const index_t rows = image.height / patch, columns = image.width / patch, tokens = rows * columns;
  LayerStack<T> layers;
  layers.push_back(std::make_unique<Patchify<T>>(PatchGeometry{image.channels, image.height, image.width, patch}));
  layers.push_back(make_token_linear<T>(patch * patch * image.channels, tokens, features, true, offset));
  layers.push_back(make_positions<T>(features, tokens, sincos_positions_2d(features, rows, columns)));
  return layers;
}
template LayerStack<float> make_patch_embedding<float>(TensorShape, index_t, index_t, index_t);
template LayerStack<double> make_patch_embedding<double>(TensorShape, index_t, index_t, index_t);

}  // namespace cflow
